#!/usr/bin/python3
"""Socket makers for snapshot_bench; run inside the benchmark's network namespace.

  bench_sockets.py hold --addr A --ports P,P,... --conns N --ready FILE
                        [--storm-rate R --closed FILE]
      Listen on A:P for each port, open N loopback connections to them and accept
      each one, so this process holds both ends (2N ESTABLISHED sockets, 2N fds + the
      listeners). Then write the number of connections to FILE (atomically) and sleep
      until killed. Dies with its parent (PR_SET_PDEATHSIG). Every connected socket has
      SO_LINGER 0: when closed (or the holder killed) it is aborted (RST) and destroyed
      at once, leaving no TIME-WAIT socket behind to slow the next measurement.
      With --storm-rate, SIGUSR1 makes it close all 2N sockets at R closes per second
      (client and server ends alternating), then write
      "CLOSES SECONDS" to the --closed FILE (atomically).

  bench_sockets.py timewait --addr A --port P --count N
      Make N TIME-WAIT sockets: connect, accept, close the client first, wait for the
      server side to read EOF, then close it (so only the client side goes to
      TIME-WAIT; a simultaneous close would leave both ends in TIME-WAIT or CLOSING).
      Exits when done; the TIME-WAIT sockets belong to the kernel.

  bench_sockets.py udp --addr A --first-port P --count N --ready FILE
      Bind N UDP sockets to A:P, A:P+1, ...; every fourth is also connected (to the
      port before it). Then write N to FILE (atomically) and sleep until killed. Dies with
      its parent.

Errors go to stderr with exit status 1.
"""
import argparse
import ctypes
import os
import resource
import signal
import socket
import struct
import sys
import time

BATCH = 1000          # connections in flight before accepting; below listen() backlog
BACKLOG = 4096        # capped by net.core.somaxconn (4096 in a new namespace)
ABORT = struct.pack("ii", 1, 0)   # SO_LINGER on, 0 s: close() sends RST, no TIME-WAIT


def die_with_parent():
    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() == 1:       # parent already gone before prctl took effect
        sys.exit(1)


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return
    with open("/proc/sys/fs/nr_open") as f:
        nr_open = int(f.read())
    want = min(max(need, 200000), nr_open)
    if want < need:
        raise SystemExit("need %d fds but fs.nr_open is %d: use more --procs" % (need, nr_open))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))


def listener(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(BACKLOG)
    return s


def connect_batch(listeners, addr, ports, count, first, abort=False):
    """count connections spread round-robin over the listeners; returns (clients, servers)."""
    clients, pending = [], [0] * len(ports)
    for k in range(first, first + count):
        i = k % len(ports)
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if abort:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, ABORT)
        c.connect((addr, ports[i]))
        clients.append(c)
        pending[i] += 1
    servers = []
    for i, n in enumerate(pending):
        for _ in range(n):
            s, _ = listeners[i].accept()
            if abort:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, ABORT)
            servers.append(s)
    return clients, servers


def hold(a):
    die_with_parent()
    ports = [int(p) for p in a.ports.split(",")]
    raise_nofile(2 * a.conns + len(ports) + 64)
    listeners = [listener(a.addr, p) for p in ports]
    kept = []
    done = 0
    while done < a.conns:
        n = min(BATCH, a.conns - done)
        clients, servers = connect_batch(listeners, a.addr, ports, n, done, abort=True)
        kept.append((clients, servers))
        done += n
    tmp = a.ready + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % done)
    os.rename(tmp, a.ready)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if not a.storm_rate:
        while True:
            signal.pause()
    go = []
    signal.signal(signal.SIGUSR1, lambda *_: go.append(1))
    while not go:
        signal.pause()
    closes, seconds = storm(kept, a.storm_rate)
    tmp = a.closed + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d %.6f\n" % (closes, seconds))
    os.rename(tmp, a.closed)
    while True:
        signal.pause()


def storm(kept, rate):
    """Close every held connection socket at `rate` closes per second; (closes, seconds)."""
    socks = []
    for clients, servers in kept:
        for c, s in zip(clients, servers):
            socks += (c, s)
    step = max(1, rate // 1000)  # a batch a millisecond
    t0 = time.monotonic()
    for i in range(0, len(socks), step):
        for s in socks[i:i + step]:
            s.close()
        ahead = t0 + (i + step) / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    return len(socks), time.monotonic() - t0


def timewait(a):
    die_with_parent()
    raise_nofile(2 * BATCH + 64)
    lst = listener(a.addr, a.port)
    done = 0
    while done < a.count:
        n = min(BATCH, a.count - done)
        clients, servers = connect_batch([lst], a.addr, [a.port], n, 0)
        for c in clients:
            c.close()
        for s in servers:
            if s.recv(1) != b"":
                raise SystemExit("unexpected data on a server socket")
            s.close()
        done += n
    lst.close()


def udp(a):
    die_with_parent()
    raise_nofile(a.count + 64)
    kept = []
    for i in range(a.count):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((a.addr, a.first_port + i))
        if i % 4 == 3:
            s.connect((a.addr, a.first_port + i - 1))
        kept.append(s)
    tmp = a.ready + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % len(kept))
    os.rename(tmp, a.ready)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    while True:
        signal.pause()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("hold")
    h.add_argument("--addr", required=True)
    h.add_argument("--ports", required=True)
    h.add_argument("--conns", type=int, required=True)
    h.add_argument("--ready", required=True)
    h.add_argument("--storm-rate", type=int, default=0)
    h.add_argument("--closed")
    t = sub.add_parser("timewait")
    t.add_argument("--addr", required=True)
    t.add_argument("--port", type=int, required=True)
    t.add_argument("--count", type=int, required=True)
    u = sub.add_parser("udp")
    u.add_argument("--addr", required=True)
    u.add_argument("--first-port", type=int, required=True)
    u.add_argument("--count", type=int, required=True)
    u.add_argument("--ready", required=True)
    a = p.parse_args()
    try:
        {"hold": hold, "timewait": timewait, "udp": udp}[a.cmd](a)
    except OSError as e:
        sys.stderr.write("bench_sockets %s: %s\n" % (a.cmd, e))
        sys.exit(1)


if __name__ == "__main__":
    main()
