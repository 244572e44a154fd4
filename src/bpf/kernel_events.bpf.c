// SPDX-License-Identifier: GPL-2.0
/*
 * The kernel-event source: TCP state transitions, the owner at accept(), and exec, into
 * one ring buffer. Tracepoints only (tp_btf: no tracefs, no kprobes, no fentry), with the
 * kernel's types resolved at load time against its BTF (kernel_types.h, CO-RE).
 */
#define SOCKSTATE_BPF_PROGRAM
#include "kernel_types.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "wire.h"

char LICENSE[] SEC("license") = "GPL";

/* Sized by the loader before load (bpf_map__set_max_entries). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} events SEC(".maps");

/*
 * Events the ring buffer had no room for. A global (.bss, mmapped by the skeleton): the
 * daemon reads it at every drain without a bpf() syscall; it changes only when the ring is
 * full, so the one atomic add is never contended in the common case.
 */
__u64 lost_events = 0;

/* The syscall numbers of accept() and accept4() on the target. */
#if defined(__TARGET_ARCH_x86)
#define NR_ACCEPT 43
#define NR_ACCEPT4 288
#define SYSCALL_NR(regs) ((regs)->orig_ax)
#else
#error "the kernel-event source knows the syscall numbers of x86_64 only"
#endif

static __always_inline void count_lost(void)
{
	__sync_fetch_and_add(&lost_events, 1);
}

/*
 * Few wakeups: the daemon reads the ring before it reads any destroy event and at every
 * poll, which is when it needs what most events say (a socket's start and end). Only an
 * event after which it reads /proc while the process may still live (an exec: its exe; a
 * connect(), listen() or accept(): the owner's cgroup and parent) wakes it, and only when
 * the ring was empty (libbpf's adaptive wakeup); any event wakes it once a quarter of the
 * ring (at most 256 KiB) waits, so that a burst read late does not fill it.
 */
static __always_inline void submit(void *e, bool prompt)
{
	__u64 waiting = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	__u64 size = bpf_ringbuf_query(&events, BPF_RB_RING_SIZE);
	__u64 threshold = size / 4 < (256 << 10) ? size / 4 : (256 << 10);

	if (waiting > threshold)
		bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
	else
		bpf_ringbuf_submit(e, prompt ? 0 : BPF_RB_NO_WAKEUP);
}

/*
 * The reader's pid namespace (its nsfs device and inode), set by the loader when it is
 * not the initial one (a container): pids are then given as the reader sees them, and a
 * task outside it as pid 0 (no owner it could name). The parent's pid has no such helper:
 * it is 0 then, and the reader takes it from /proc.
 */
const volatile __u64 pidns_dev = 0;
const volatile __u64 pidns_ino = 0;

static __always_inline void fill_task(struct sockstate_task *t)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 id = bpf_get_current_pid_tgid();
	struct bpf_pidns_info ns;

	t->tgid = id >> 32;
	t->pid = (__u32)id;
	t->ppid = task->group_leader->real_parent->tgid;
	if (pidns_ino) {
		t->ppid = 0;
		if (bpf_get_ns_current_pid_tgid(pidns_dev, pidns_ino, &ns, sizeof(ns)) == 0) {
			t->tgid = ns.tgid;
			t->pid = ns.pid;
		} else {
			t->tgid = 0;
			t->pid = 0;
		}
	}
	t->uid = (__u32)bpf_get_current_uid_gid();
	t->start_boottime_ns = task->group_leader->start_boottime;
	bpf_get_current_comm(t->comm, sizeof(t->comm));
}

static __always_inline void fill_endpoints(struct sockstate_state_event *e, const struct sock *sk)
{
	__builtin_memset(e->saddr, 0, sizeof(e->saddr));
	__builtin_memset(e->daddr, 0, sizeof(e->daddr));
	e->family = sk->__sk_common.skc_family;
	e->sport = sk->__sk_common.skc_num;
	e->dport = bpf_ntohs(sk->__sk_common.skc_dport);
	if (e->family == AF_INET) {
		__be32 s = sk->__sk_common.skc_rcv_saddr;
		__be32 d = sk->__sk_common.skc_daddr;

		__builtin_memcpy(e->saddr, &s, 4);
		__builtin_memcpy(e->daddr, &d, 4);
	} else {
		BPF_CORE_READ_INTO(&e->saddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&e->daddr, sk, __sk_common.skc_v6_daddr);
	}
}

static __always_inline void fill_counters(struct sockstate_state_event *e, const struct sock *sk)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock((void *)sk);

	e->bytes_acked = e->bytes_received = e->bytes_sent = e->bytes_retrans = 0;
	e->total_retrans = e->srtt_us = 0;
	if (!tp)
		return;
	/* skc_num is 0 already at the transition to CLOSE; inet_sport is kept. */
	e->sport = bpf_ntohs(tp->inet_conn.icsk_inet.inet_sport);
	e->bytes_acked = tp->bytes_acked;
	e->bytes_received = tp->bytes_received;
	e->bytes_sent = tp->bytes_sent;
	e->bytes_retrans = tp->bytes_retrans;
	e->total_retrans = tp->total_retrans;
	e->srtt_us = tp->srtt_us;
	e->flags |= SOCKSTATE_EV_F_TCP_INFO;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(on_state, const struct sock *sk, const int old_state, const int new_state)
{
	struct sockstate_state_event *e;

	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	/*
	 * Only the transitions the reader uses: a socket's start (connect(), listen(), a
	 * passive open's child) and its end. The others (ESTABLISHED, FIN-WAIT, CLOSE-WAIT,
	 * LAST-ACK, CLOSING, TIME-WAIT) the polls and destroy events report: three events a
	 * connection's end instead of eight.
	 */
	if (new_state != TCP_SYN_SENT && new_state != TCP_SYN_RECV && new_state != TCP_LISTEN &&
	    new_state != TCP_CLOSE)
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return 0;
	}
	e->type = SOCKSTATE_EV_STATE;
	e->flags = 0;
	e->boottime_ns = bpf_ktime_get_boot_ns();
	e->cookie = bpf_get_socket_cookie((void *)sk);
	e->old_state = old_state;
	e->new_state = new_state;
	/* Why it ended: the kernel sets sk_err (refused, timed out, unreachable) first. */
	e->error = new_state == TCP_CLOSE ? (__u16)sk->sk_err : 0;
	e->netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	fill_endpoints(e, sk);
	fill_counters(e, sk);
	fill_task(&e->task);
	submit(e, false);
	return 0;
}

/* The accepted socket, through the returned fd: current->files->fdt->fd[fd]. */
static __always_inline int emit_accept(long ret)
{
	struct sockstate_accept_event *e;
	struct task_struct *task;
	struct fdtable *fdt;
	struct file *f = 0;
	struct socket *so;
	struct sock *sk;
	int fd = (int)ret;

	if (ret < 0)
		return 0;
	task = bpf_get_current_task_btf();
	fdt = task->files->fdt;
	if ((unsigned int)fd >= fdt->max_fds)
		return 0;
	if (bpf_probe_read_kernel(&f, sizeof(f), &fdt->fd[fd]) || !f)
		return 0;
	so = BPF_CORE_READ(f, private_data);
	sk = BPF_CORE_READ(so, sk);
	/* accept() of a Unix or other socket: nothing of ours, no event. */
	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return 0;
	}
	e->type = SOCKSTATE_EV_ACCEPT;
	e->fd = fd;
	e->boottime_ns = bpf_ktime_get_boot_ns();
	e->cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	e->inode = BPF_CORE_READ(f, f_inode, i_ino);
	fill_task(&e->task);
	submit(e, false);
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(on_sys_exit, struct pt_regs *regs, long ret)
{
	unsigned long nr = SYSCALL_NR(regs);

	if (nr != NR_ACCEPT && nr != NR_ACCEPT4)
		return 0;
	return emit_accept(ret);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct sockstate_exec_event *e;
	unsigned long start, end, n;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return 0;
	}
	e->type = SOCKSTATE_EV_EXEC;
	e->old_pid = old_pid;
	e->boottime_ns = bpf_ktime_get_boot_ns();
	fill_task(&e->task);
	bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), bprm->filename);
	e->argc = bprm->argc;
	start = p->mm->arg_start;
	end = p->mm->arg_end;
	n = end > start ? end - start : 0;
	if (n > sizeof(e->args))
		n = sizeof(e->args);
	e->args_len = 0;
	if (n > 0 && bpf_probe_read_user(e->args, n & 0x1ff, (void *)start) == 0)
		e->args_len = n;
	submit(e, true);
	return 0;
}
