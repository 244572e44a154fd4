#!/usr/bin/python3
"""Records the sock_diag fixtures of tests/data with iproute2's `ss -D`.

Run as root inside a private network namespace, from the repository root:

    unshare -n -- /usr/bin/python3 tests/data/record_fixtures.py tests/data

It brings `lo` up, builds a fixed set of TCP sockets (every port is bound explicitly, so
the fixture is the same on every run but for cookies, inodes, timers and tcp_info
counters), then records:

  tcp_basic.nldump  `ss -tan -D FILE`   (no extensions)
  tcp_info.nldump   `ss -tani -D FILE`  (idiag_ext asks INET_DIAG_INFO, VEGASINFO, CONG)

For each it writes <name>.datagrams (the size of every datagram ss received, one per line,
taken from strace, so tests can feed the file exactly as the kernel delivered it) and the
note <name>.txt: the command, the file layout, and the `ss` text views of the sockets.

The sockets (ports are fixed; the state is what `ss -tan` shows):
  v4 listener        127.0.0.1:40100
  v4 established     127.0.0.1:40101 <-> 127.0.0.1:40100  client sends 1000 bytes,
                     server sends 3000 bytes; both read everything
  v4 TIME-WAIT       127.0.0.1:40102 -> 127.0.0.1:40100   client closes first
  v6 listener        [::1]:40200 (IPV6_V6ONLY)
  v6 established     [::1]:40201 <-> [::1]:40200          client sends 500, server 700
  v6 TIME-WAIT       [::1]:40202 -> [::1]:40200           client closes first
  dual-stack listen  [::]:40300 (IPV6_V6ONLY=0)
  v4 client          127.0.0.1:40301 -> 127.0.0.1:40300   sends 100 bytes that the
                     server never reads (Recv-Q 100 on the accepted socket)
  accepted (AF_INET6) [::ffff:127.0.0.1]:40300 <-> [::ffff:127.0.0.1]:40301
"""

import os
import re
import socket
import subprocess
import sys
import time


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise RuntimeError("early EOF")
        buf += chunk
    return buf


def connect(family, listener, src, dst):
    c = socket.socket(family, socket.SOCK_STREAM)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    c.bind(src)
    c.connect(dst)
    s, _ = listener.accept()
    return c, s


def listen(family, addr, v6only=None):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if v6only is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if v6only else 0)
    s.bind(addr)
    s.listen(8)
    return s


def exchange(c, s, up, down):
    c.sendall(b"c" * up)
    recv_exact(s, up)
    s.sendall(b"s" * down)
    recv_exact(c, down)


def time_wait(family, listener, src, dst):
    c, s = connect(family, listener, src, dst)
    c.close()  # the active closer ends in TIME-WAIT
    assert s.recv(1) == b""
    s.close()


def record(outdir, name, flags):
    path = os.path.join(outdir, name + ".nldump")
    trace = os.path.join(outdir, name + ".strace.tmp")
    run(["strace", "-f", "-o", trace, "-e", "trace=recvmsg,sendmsg", "-s", "0",
         "ss", flags, "-D", path])
    sizes = []
    with open(trace) as f:
        for line in f:
            if "recvmsg(" in line and "MSG_PEEK" not in line:
                m = re.search(r"= (\d+)$", line.strip())
                if m:
                    sizes.append(int(m.group(1)))
    os.unlink(trace)
    assert sum(sizes) == os.path.getsize(path), (sizes, os.path.getsize(path))
    with open(os.path.join(outdir, name + ".datagrams"), "w") as f:
        f.write("".join(f"{n}\n" for n in sizes))
    return sizes


LAYOUT = """\
How the file is laid out (checked against iproute2 misc/ss.c inet_show_netlink() and
sockdiag_send(), lib/libnetlink.c rtnl_dump_filter_l(), and this recording's strace):
* It is the datagrams ss received, concatenated byte for byte: after each recvmsg()
  rtnl_dump_filter_l() does fwrite(buf, 1, NLMSG_ALIGN(len), dump_fp). No file header,
  no datagram boundaries; <name>.datagrams keeps the sizes strace saw.
* ss sends two dump requests on one NETLINK_SOCK_DIAG socket, AF_INET then AF_INET6,
  both SOCK_DIAG_BY_FAMILY with inet_diag_req_v2, nlmsg_flags NLM_F_REQUEST|NLM_F_DUMP
  (written NLM_F_ROOT|NLM_F_MATCH in ss.c), nlmsg_seq = MAGIC_SEQ = 123456 for both,
  sdiag_protocol IPPROTO_TCP, idiag_states 0xfff for -a (bits 0..11: no NEW_SYN_RECV,
  no BOUND_INACTIVE). -i sets idiag_ext = INFO|VEGASINFO|CONG (0x0e); without -i, 0.
  With -D, ss exits before parsing a filter expression: no INET_DIAG_REQ_BYTECODE.
* So the file holds two dumps, each ended by its own NLMSG_DONE (nlmsg_len 20, payload
  int 0). The kernel sent each family's sockets in one datagram and each DONE alone in
  the next (netlink_dump() appends DONE only to a round that added nothing).
* Every message: nlmsg_seq 123456, nlmsg_flags NLM_F_MULTI (0x2), nlmsg_pid = the port
  id of ss's netlink socket (its pid, kernel autobind), also on the DONEs.
* Replaying with `TCPDIAG_FILE=FILE ss -tan` shows only the AF_INET part:
  tcp_show_netlink_file() stops at the first NLMSG_DONE.
* Attributes on this kernel: full sockets carry SHUTDOWN(8), MARK(15; ss ran as root),
  CGROUP_ID(21), SOCKOPT(22), and SKV6ONLY(11) on AF_INET6 listeners; with -i also
  INFO(2; 280 bytes of tcp_info), CONG(4), and BBRINFO(16) on connected sockets.
  TIME-WAIT minisockets carry only MARK(15): inode 0, uid 0, no tcp_info.
"""


def main():
    outdir = sys.argv[1]
    run(["ip", "link", "set", "lo", "up"])
    keep = []

    l4 = listen(socket.AF_INET, ("127.0.0.1", 40100))
    c, s = connect(socket.AF_INET, l4, ("127.0.0.1", 40101), ("127.0.0.1", 40100))
    exchange(c, s, 1000, 3000)
    keep += [l4, c, s]
    time_wait(socket.AF_INET, l4, ("127.0.0.1", 40102), ("127.0.0.1", 40100))

    l6 = listen(socket.AF_INET6, ("::1", 40200), v6only=True)
    c, s = connect(socket.AF_INET6, l6, ("::1", 40201), ("::1", 40200))
    exchange(c, s, 500, 700)
    keep += [l6, c, s]
    time_wait(socket.AF_INET6, l6, ("::1", 40202), ("::1", 40200))

    ld = listen(socket.AF_INET6, ("::", 40300), v6only=False)
    c, s = connect(socket.AF_INET, ld, ("127.0.0.1", 40301), ("127.0.0.1", 40300))
    c.sendall(b"m" * 100)
    keep += [ld, c, s]

    time.sleep(0.5)  # delayed ACKs settle, so bytes_acked is final
    uname = run(["uname", "-r"]).strip()
    ssver = run(["ss", "-V"]).strip()
    for name, flags in (("tcp_basic", "-tan"), ("tcp_info", "-tani")):
        sizes = record(outdir, name, flags)
        views = ["-tan", "-tane"] + (["-tani"] if flags == "-tani" else [])
        with open(os.path.join(outdir, name + ".txt"), "w") as f:
            f.write(f"{name}.nldump: `ss {flags} -D {name}.nldump`, recorded on Linux {uname}\n")
            f.write(f"with {ssver}, as root, in a private network namespace:\n\n")
            f.write("    unshare -n -- /usr/bin/python3 tests/data/record_fixtures.py tests/data\n\n")
            f.write("(record_fixtures.py says which sockets it makes and how.) Re-recording changes\n")
            f.write("cookies, inodes, the port id and tcp_info counters: update parser_test.cpp.\n\n")
            f.write(f"Datagrams (bytes, in order): {' '.join(map(str, sizes))}; "
                    f"file size {sum(sizes)}.\n\n")
            f.write(LAYOUT)
            for v in views:
                text = "\n".join(line.rstrip() for line in run(["ss", v]).splitlines())
                f.write(f"\n`ss {v}` in the namespace right after the recording:\n\n{text}\n")


if __name__ == "__main__":
    main()
