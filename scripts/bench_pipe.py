"""Queued steps through a pipe to the writer process: the pipe's buffer size (node/writer_process.py).

    .venv/bin/python scripts/bench_pipe.py [--messages 30] [--mb 10] [--rounds 2]

Sends ``--messages`` messages of ``--mb`` MB each (the 1M-trade day's queued steps are ~33
messages, 307 MB in all) from this process to a fresh interpreter through a pipe, as
``WriterProcess`` does (``Connection.send_bytes`` / ``recv_bytes`` on ``os.pipe`` descriptors),
once with the pipe's default buffer and once widened by ``widen_pipe``, alternating; prints the
buffer size, the sender's and the receiver's CPU seconds and the wall time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from multiprocessing.connection import Connection

from clearlane.node.writer_process import widen_pipe

_RECEIVER = """
import os, sys, time
from multiprocessing.connection import Connection
conn = Connection(int(sys.argv[1]), writable=False)
n = int(sys.argv[2])
started = time.process_time()
for _ in range(n):
    conn.recv_bytes()
print(f"{time.process_time() - started:.3f}")
"""


def run(messages: int, size: int, widen: bool) -> tuple[int, float, float, float]:
    read_fd, write_fd = os.pipe()
    buffer = widen_pipe(write_fd) if widen else 0
    receiver = subprocess.Popen(
        [sys.executable, "-c", _RECEIVER, str(read_fd), str(messages)],
        pass_fds=(read_fd,),
        stdout=subprocess.PIPE,
        text=True,
    )
    os.close(read_fd)
    conn = Connection(write_fd, readable=False)
    data = os.urandom(size)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(messages):
        conn.send_bytes(data)
    sent_cpu = time.process_time() - cpu
    out, _ = receiver.communicate()
    wall = time.perf_counter() - wall
    conn.close()
    return buffer, sent_cpu, float(out.strip()), wall


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=30)
    parser.add_argument("--mb", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    size = int(args.mb * 1_000_000)
    print(f"{args.messages} messages of {size:,} bytes ({args.messages * size / 1e6:,.0f} MB)")
    for _ in range(args.rounds):
        for widen in (False, True):
            buffer, sender, receiver, wall = run(args.messages, size, widen)
            label = f"widened to {buffer:,} B" if widen else "default buffer"
            print(
                f"{label:26s} sender CPU {sender:6.3f} s, receiver CPU {receiver:6.3f} s, wall {wall:6.3f} s"
            )


if __name__ == "__main__":
    main()
