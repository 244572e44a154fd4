// SPDX-License-Identifier: GPL-2.0
/*
 * Who holds each inet socket: an iterator over every task's open files (iter/task_file;
 * threads that share their leader's file table are skipped by the kernel), one record per
 * socket fd of family AF_INET or AF_INET6: the holder's tgid and the socket's inode, the
 * same pair a /proc/<pid>/fd walk reads, without a readlink each.
 */
#define SOCKSTATE_BPF_PROGRAM
#include "kernel_types.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "wire.h"

char LICENSE[] SEC("license") = "GPL";

SEC("iter/task_file")
int socket_holders(struct bpf_iter__task_file *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct sockstate_holder r;
	struct socket *so;
	struct sock *sk;
	__u16 family;

	if (!task || !file)
		return 0;
	so = bpf_sock_from_file(file); /* NULL unless the file is a socket */
	if (!so)
		return 0;
	sk = BPF_CORE_READ(so, sk);
	if (!sk)
		return 0;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;
	r.tgid = task->tgid;
	r.inode = BPF_CORE_READ(file, f_inode, i_ino);
	bpf_seq_write(seq, &r, sizeof(r));
	return 0;
}
