/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The kernel types the sockstate BPF programs read, written by hand so that a build needs
 * no BTF of its own host (no vmlinux.h). NOT generated from any kernel: every struct carries
 * preserve_access_index, so clang emits CO-RE relocations and libbpf
 * resolves the real offsets against the running kernel's BTF
 * (/sys/kernel/btf/vmlinux) at load time.  Only the members we touch are
 * declared, in any order; members that live inside anonymous unions/structs
 * in the kernel may be declared flat here (libbpf searches anonymous members).
 * Field *sizes* must match the kernel's (or be read with BPF_CORE_READ).
 */
#ifndef SOCKSTATE_BPF_KERNEL_TYPES_H
#define SOCKSTATE_BPF_KERNEL_TYPES_H

typedef unsigned char __u8;
typedef signed char __s8;
typedef unsigned short __u16;
typedef short __s16;
typedef unsigned int __u32;
typedef int __s32;
typedef unsigned long long __u64;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s32 pid_t;
typedef __u32 uid_t;
typedef _Bool bool;
#define true 1
#define false 0

/* UAPI constants we need (stable ABI, from linux/bpf.h) */
enum {
  BPF_MAP_TYPE_HASH = 1,
  BPF_MAP_TYPE_ARRAY = 2,
  BPF_MAP_TYPE_PERCPU_ARRAY = 6,
  BPF_MAP_TYPE_RINGBUF = 27,
};
enum { BPF_ANY = 0, BPF_NOEXIST = 1, BPF_EXIST = 2 };
#define BPF_RB_NO_WAKEUP (1ULL << 0)
#define BPF_RB_FORCE_WAKEUP (1ULL << 1)
enum { BPF_RB_AVAIL_DATA = 0, BPF_RB_RING_SIZE = 1 };

/* tcp states, AF_*, S_IFMT: stable ABI */
enum {
  TCP_ESTABLISHED = 1,
  TCP_SYN_SENT,
  TCP_SYN_RECV,
  TCP_FIN_WAIT1,
  TCP_FIN_WAIT2,
  TCP_TIME_WAIT,
  TCP_CLOSE,
  TCP_CLOSE_WAIT,
  TCP_LAST_ACK,
  TCP_LISTEN,
  TCP_CLOSING,
  TCP_NEW_SYN_RECV,
};
#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define SOCK_STREAM 1
#define S_IFMT 00170000
#define S_IFSOCK 0140000

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct in6_addr {
  union {
    __u8 u6_addr8[16];
    __be32 u6_addr32[4];
  } in6_u;
};

typedef struct {
  __s64 counter;
} atomic64_t;

struct ns_common {
  unsigned int inum;
};
struct net {
  struct ns_common ns;
};
typedef struct {
  struct net* net;
} possible_net_t;

struct sock_common {
  /* all of these sit inside anonymous unions/structs in the kernel */
  __be32 skc_daddr;
  __be32 skc_rcv_saddr;
  __be16 skc_dport;
  __u16 skc_num;
  unsigned short skc_family;
  volatile unsigned char skc_state;
  struct in6_addr skc_v6_daddr;
  struct in6_addr skc_v6_rcv_saddr;
  atomic64_t skc_cookie;
  possible_net_t skc_net;
};

struct socket;
struct sock {
  struct sock_common __sk_common;
  u16 sk_protocol;
  u16 sk_type;
  int sk_err;
  struct socket* sk_socket;
};

struct inet_sock {
  struct sock sk;
  __be32 inet_saddr;
  __be16 inet_sport; /* NOT cleared at CLOSE, unlike skc_num */
};

struct inet_connection_sock {
  struct inet_sock icsk_inet;
};

struct tcp_sock {
  struct inet_connection_sock inet_conn;
  u32 segs_in;
  u32 segs_out;
  u32 data_segs_out;
  u64 bytes_sent;
  u64 bytes_received;
  u64 bytes_acked;
  u64 bytes_retrans;
  u32 total_retrans;
  u32 srtt_us;
  u32 snd_una;
  u32 rcv_nxt;
};

struct inode {
  unsigned short i_mode; /* umode_t */
  unsigned long i_ino;
};

struct file {
  struct inode* f_inode;
  void* private_data;
};

struct socket {
  short type;
  struct file* file;
  struct sock* sk;
};

struct fdtable {
  unsigned int max_fds;
  struct file** fd;
};

struct files_struct {
  struct fdtable* fdt;
};

typedef struct {
  uid_t val;
} kuid_t;
struct cred {
  kuid_t uid;
  kuid_t euid;
};

struct mm_struct {
  unsigned long arg_start; /* anonymous struct in kernel */
  unsigned long arg_end;
};

/* UAPI (linux/bpf.h): bpf_get_ns_current_pid_tgid()'s answer */
struct bpf_pidns_info {
  __u32 pid;
  __u32 tgid;
};

struct task_struct {
  pid_t pid;
  pid_t tgid;
  char comm[16];
  u64 start_time;     /* CLOCK_MONOTONIC ns */
  u64 start_boottime; /* CLOCK_BOOTTIME ns (/proc/PID/stat field 22 source) */
  struct task_struct* real_parent;
  struct task_struct* group_leader;
  const struct cred* cred;
  struct files_struct* files;
  struct mm_struct* mm;
};

struct linux_binprm {
  const char* filename;
  const char* interp;
  int argc;
};

struct pt_regs { /* x86_64 */
  unsigned long di;
  unsigned long si;
  unsigned long orig_ax;
  unsigned long ax;
};

/* BPF iterator contexts (kernel-internal, but in BTF) */
struct seq_file;
struct bpf_iter_meta {
  struct seq_file* seq;
  u64 session_id;
  u64 seq_num;
};
struct bpf_iter__task_file {
  struct bpf_iter_meta* meta;
  struct task_struct* task;
  u32 fd;
  struct file* file;
};

struct bpf_iter__tcp {
  struct bpf_iter_meta* meta;
  struct sock_common* sk_common;
  uid_t uid;
};

#pragma clang attribute pop

#endif
