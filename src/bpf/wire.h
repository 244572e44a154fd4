/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The events the kernel-event source's BPF programs put in their ring buffer, as both
 * sides see them: kernel_events.bpf.c writes them, kernel_events.cpp reads them. Fixed
 * widths and explicit padding only; every event starts with its type.
 */
#ifndef SOCKSTATE_BPF_WIRE_H
#define SOCKSTATE_BPF_WIRE_H

#ifndef SOCKSTATE_BPF_PROGRAM
#include <linux/types.h>
#endif

enum sockstate_event_type {
  SOCKSTATE_EV_STATE = 1,  /* tp_btf/inet_sock_set_state */
  SOCKSTATE_EV_ACCEPT = 2, /* tp_btf/sys_exit of accept() and accept4() */
  SOCKSTATE_EV_EXEC = 3,   /* tp_btf/sched_process_exec */
};

#define SOCKSTATE_EV_F_TCP_INFO 1u /* the tcp_sock counters are set */

/* The task the event ran in: the owner only where the event runs in its context. */
struct sockstate_task {
  __u32 tgid;
  __u32 pid;
  __u32 uid;
  __u32 ppid;              /* the parent process (real_parent's tgid) */
  __u64 start_boottime_ns; /* the process's (group leader's) start, CLOCK_BOOTTIME */
  char comm[16];
};

struct sockstate_state_event {
  __u32 type; /* SOCKSTATE_EV_STATE */
  __u32 flags;
  __u64 boottime_ns; /* bpf_ktime_get_boot_ns() */
  __u64 cookie;      /* the socket's cookie: sock_diag's idiag_cookie */
  __s32 old_state;
  __s32 new_state;
  __u16 family;
  __u16 sport;    /* host order */
  __u16 dport;    /* host order */
  __u16 error;    /* sk_err at a transition to CLOSE (an errno); 0: none */
  __u8 saddr[16]; /* AF_INET: the first 4 bytes */
  __u8 daddr[16];
  __u64 bytes_acked;
  __u64 bytes_received;
  __u64 bytes_sent;
  __u64 bytes_retrans;
  __u32 total_retrans;
  __u32 srtt_us; /* the kernel's srtt_us: 8 times the smoothed RTT in us */
  __u64 netns;   /* the socket's network namespace inode */
  struct sockstate_task task;
};

struct sockstate_accept_event {
  __u32 type; /* SOCKSTATE_EV_ACCEPT */
  __s32 fd;
  __u64 boottime_ns;
  __u64 cookie; /* 0 when nothing asked for it yet (a socket accepted before we attached) */
  __u64 inode;  /* the socket's inode */
  struct sockstate_task task;
};

struct sockstate_exec_event {
  __u32 type; /* SOCKSTATE_EV_EXEC */
  __u32 old_pid;
  __u64 boottime_ns;
  struct sockstate_task task;
  char filename[256]; /* as given to execve() (may be relative) */
  char args[256];     /* argv, NUL-separated, cut at args_len */
  __u32 args_len;
  __u32 argc;
};

/* socket_holders.bpf.c: one socket fd of a task (iter/task_file). */
struct sockstate_holder {
  __u32 tgid;
  __u32 inode;
};

#endif
