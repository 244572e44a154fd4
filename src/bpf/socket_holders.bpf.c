// SPDX-License-Identifier: GPL-2.0
/*
 * Who holds each socket: an iterator over every task's open files (iter/task_file;
 * threads that share their leader's file table are skipped by the kernel), one record per
 * socket fd: the holder's tgid and the socket's inode, the same pair a /proc/<pid>/fd walk
 * reads (it too takes every socket, whatever its family: the reader looks up inet sockets'
 * inodes only), without a readlink each.
 *
 * Per fd it reads the file (which the kernel's walk has just touched) and its inode, and
 * no more: reading the sock for its family cost a fifth of the walk at 126,000 sockets
 * (a cache miss each).
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

	if (!task || !file)
		return 0;
	if (!bpf_sock_from_file(file)) /* NULL unless the file is a socket */
		return 0;
	r.tgid = task->tgid;
	r.inode = file->f_inode->i_ino;
	bpf_seq_write(seq, &r, sizeof(r));
	return 0;
}
