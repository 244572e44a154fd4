// Cgroup v2 paths -> containers and systemd units; cgroup ids -> paths on a fake tree.
#include "sockstate/proc/cgroup.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

namespace sockstate::proc {
namespace {

const std::string kId(64, 'a');
const std::string kPod = "8d4f1f5e-1c1b-4a6e-9f3e-2b7c9d0e1a2b";

Container container(std::string uid, std::string runtime, std::string pod = {}) {
  Container c;
  c.uid = std::move(uid);
  c.runtime = std::move(runtime);
  if (!pod.empty()) {
    c.orchestrator = "Kubernetes";
    c.pod_uuid = std::move(pod);
  }
  return c;
}

TEST(Cgroup, ContainerRuntimesFromTheirCgroupNames) {
  EXPECT_EQ(container_from_cgroup("/system.slice/docker-" + kId + ".scope"),
            container(kId, "docker"));
  EXPECT_EQ(container_from_cgroup("/docker/" + kId), container(kId, "docker"));
  EXPECT_EQ(container_from_cgroup("/machine.slice/libpod-" + kId + ".scope"),
            container(kId, "podman"));
  EXPECT_EQ(container_from_cgroup("/user.slice/user-1000.slice/user@1000.service/user.slice/"
                                  "libpod-" +
                                  kId + ".scope/container"),
            container(kId, "podman"));
  // Kubernetes, systemd driver: the pod uid with '_' for '-'.
  std::string pod_underscored = kPod;
  std::replace(pod_underscored.begin(), pod_underscored.end(), '-', '_');
  EXPECT_EQ(container_from_cgroup("/kubepods.slice/kubepods-besteffort.slice/"
                                  "kubepods-besteffort-pod" +
                                  pod_underscored + ".slice/cri-containerd-" + kId + ".scope"),
            container(kId, "containerd", kPod));
  EXPECT_EQ(container_from_cgroup("/kubepods.slice/kubepods-pod" + pod_underscored +
                                  ".slice/crio-" + kId + ".scope"),
            container(kId, "cri-o", kPod));
  // Kubernetes, cgroupfs driver: the runtime is not in the path.
  EXPECT_EQ(container_from_cgroup("/kubepods/burstable/pod" + kPod + "/" + kId),
            container(kId, "", kPod));
  Container lxc;
  lxc.name = "web";
  lxc.runtime = "lxc";
  EXPECT_EQ(container_from_cgroup("/lxc.payload.web"), lxc);
}

TEST(Cgroup, NotContainers) {
  for (const std::string& path : std::vector<std::string>{
           "/", "", "/system.slice/nginx.service", "/system.slice/docker.service",
           "/machine.slice/libpod-conmon-" + kId + ".scope",
           "/system.slice/crio-conmon-" + kId + ".scope",
           "/system.slice/docker-" + kId.substr(1) + ".scope",         // 63 digits
           "/system.slice/docker-" + std::string(64, 'G') + ".scope",  // not hex
           "/kubepods.slice/kubepods-burstable.slice",                 // a pod's parent, no pod
           "/" + kId,                                                  // an id with no runtime
           "/lxc.payload."}) {
    EXPECT_FALSE(container_from_cgroup(path).has_value()) << path;
  }
  // A pod slice alone names no container (the schema wants a uid or a name).
  EXPECT_FALSE(container_from_cgroup("/kubepods/besteffort/pod" + kPod).has_value());
}

TEST(Cgroup, SystemdUnits) {
  EXPECT_EQ(systemd_unit_from_cgroup("/system.slice/nginx.service"), "nginx.service");
  EXPECT_EQ(systemd_unit_from_cgroup("/system.slice/docker-" + kId + ".scope"),
            "docker-" + kId + ".scope");
  EXPECT_EQ(systemd_unit_from_cgroup("/user.slice/user-1000.slice/user@1000.service/app.slice/"
                                     "x.scope"),
            "user@1000.service");
  EXPECT_EQ(systemd_unit_from_cgroup("/init.scope"), "init.scope");
  EXPECT_EQ(systemd_unit_from_cgroup("/"), "");
  EXPECT_EQ(systemd_unit_from_cgroup("/system.slice"), "");
  EXPECT_EQ(systemd_unit_from_cgroup("/docker/" + kId), "");
  EXPECT_EQ(systemd_unit_from_cgroup("/kubepods/burstable/pod" + kPod + "/" + kId), "");
}

TEST(Cgroup, ProcCgroupFile) {
  EXPECT_EQ(cgroup2_path_from_proc("0::/system.slice/ssh.service\n"), "/system.slice/ssh.service");
  EXPECT_EQ(cgroup2_path_from_proc("12:pids:/\n4:memory:/x\n0::/user.slice\n"), "/user.slice");
  EXPECT_EQ(cgroup2_path_from_proc("4:memory:/x\n"), "");  // v1 only
  EXPECT_EQ(cgroup2_path_from_proc(""), "");
}

class FakeTree : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::path(::testing::TempDir()) /
            ("cgroup-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_ / "system.slice" / "nginx.service");
    std::filesystem::create_directories(root_ / "system.slice" / ("docker-" + kId + ".scope"));
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  static std::uint64_t inode(const std::filesystem::path& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_ino;
  }

  std::filesystem::path root_;
};

TEST_F(FakeTree, ResolvesIdsByDirectoryInode) {
  CgroupResolver r(root_.string());
  const CgroupInfo* nginx = r.resolve(inode(root_ / "system.slice" / "nginx.service"));
  ASSERT_NE(nginx, nullptr);
  EXPECT_EQ(nginx->path, "/system.slice/nginx.service");
  EXPECT_EQ(nginx->unit, "nginx.service");
  EXPECT_FALSE(nginx->container.has_value());
  const CgroupInfo* docker =
      r.resolve(inode(root_ / "system.slice" / ("docker-" + kId + ".scope")));
  ASSERT_NE(docker, nullptr);
  EXPECT_EQ(docker->container, container(kId, "docker"));
  const CgroupInfo* top = r.resolve(inode(root_));
  ASSERT_NE(top, nullptr);
  EXPECT_EQ(top->path, "/");
  EXPECT_EQ(r.stats().walks, 1U);  // every id came from one walk
  EXPECT_EQ(r.stats().cgroups, 4U);
}

TEST_F(FakeTree, NewCgroupCausesOneWalkAndUnknownIdsAreRemembered) {
  CgroupResolver r(root_.string());
  ASSERT_NE(r.resolve(inode(root_)), nullptr);
  std::filesystem::create_directories(root_ / "system.slice" / "late.service");
  const CgroupInfo* late = r.resolve(inode(root_ / "system.slice" / "late.service"));
  ASSERT_NE(late, nullptr);
  EXPECT_EQ(late->unit, "late.service");
  EXPECT_EQ(r.stats().walks, 2U);
  const std::uint64_t gone = 0xFFFFFFFFFFFFULL;
  EXPECT_EQ(r.resolve(gone), nullptr);
  EXPECT_EQ(r.resolve(gone), nullptr);
  EXPECT_EQ(r.stats().walks, 3U);  // one walk for the unknown id, not two
  EXPECT_EQ(r.stats().unresolved, 1U);
  EXPECT_EQ(r.resolve(0), nullptr);  // no cgroup
  EXPECT_EQ(r.stats().walks, 3U);
}

TEST_F(FakeTree, FindsTheCgroup2MountInMountinfo) {
  const auto path = root_ / "mountinfo";
  std::ofstream(path)
      << "24 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
         "30 24 0:26 / /sys/fs/cgroup ro,nosuid shared:4 - tmpfs tmpfs ro,mode=755\n"
         "31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid shared:5 - cgroup2 cgroup2 rw\n";
  EXPECT_EQ(find_cgroup2_mount(path.string()), "/sys/fs/cgroup/unified");
  std::ofstream(path) << "24 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n";
  EXPECT_EQ(find_cgroup2_mount(path.string()), "");
  EXPECT_EQ(find_cgroup2_mount((root_ / "missing").string()), "");
  CgroupResolver none("/nonexistent-cgroup-root");
  EXPECT_EQ(none.resolve(1), nullptr);
}

// The real hierarchy: a live cgroup's id is answered by the kernel directly (its kernfs
// handle), with no walk of the tree that a sibling's removal could disturb; once removed,
// neither the handle nor a walk finds it. Needs root (CAP_DAC_READ_SEARCH, mkdir there).
TEST(CgroupKernel, ResolvesALiveIdByItsHandleWithoutAWalk) {
  const std::string mount = find_cgroup2_mount();
  if (::geteuid() != 0 || mount.empty()) {
    GTEST_SKIP() << "needs root and a cgroup v2 mount";
  }
  const std::string name = "sockstate-handle-test-" + std::to_string(::getpid());
  const std::filesystem::path dir = std::filesystem::path(mount) / name;
  if (::mkdir(dir.c_str(), 0755) != 0) {
    GTEST_SKIP() << "cannot make a cgroup under " << mount << ": " << std::strerror(errno);
  }
  struct stat st {};
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);
  const std::uint64_t id = st.st_ino;
  {
    CgroupResolver r(mount);
    const CgroupInfo* info = r.resolve(id);
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->path, "/" + name);
    EXPECT_EQ(r.stats().by_handle, 1U);
    EXPECT_EQ(r.stats().walks, 0U);
    const CgroupInfo* top = r.resolve(1);  // the root cgroup
    ASSERT_NE(top, nullptr);
    EXPECT_EQ(top->path, "/");
  }
  ASSERT_EQ(::rmdir(dir.c_str()), 0);
  CgroupResolver r(mount);
  EXPECT_EQ(r.resolve(id), nullptr);
  EXPECT_EQ(r.stats().by_handle, 0U);
  EXPECT_EQ(r.stats().walks, 1U);
  EXPECT_EQ(r.stats().unresolved, 1U);
}

}  // namespace
}  // namespace sockstate::proc
