"""Holds COUNT half-sent HTTP requests to HOST:PORT: each connection sends a request line and
one header, never the blank line that ends the head. Source addresses rotate over
127.0.1.FIRST.. (100 of them) so that no single address passes a per-source cap. Prints
"held N" once they are open, keeps them HOLD seconds, closes them all and prints "closed".

    python3 half_open.py HOST PORT COUNT FIRST HOLD
"""
import resource
import socket
import sys
import time

host, port, count, first, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
held, failed = [], 0
for i in range(count):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((f"127.0.1.{first + i % 100}", 0))
        s.settimeout(5)
        s.connect((host, port))
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        held.append(s)
    except OSError:
        # Closed by the server to make room, or refused: the flood goes on.
        failed += 1
        s.close()
print(f"held {len(held)} failed {failed}", flush=True)
time.sleep(hold)
for s in held:
    s.close()
print("closed", flush=True)
