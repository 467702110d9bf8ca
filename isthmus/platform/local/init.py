"""PID 1 of the isthmus namespace: prepares the private /run, starts the daemon and reaps orphans.

When the daemon exits (or is killed), init exits, and the kernel kills every
process left in the PID namespace: nothing of a mesh outlives its daemon.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys


def main() -> int:
    # A private /run holds the named network namespaces and the xtables lock; it is
    # only visible inside this mount namespace and disappears with it.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "isthmus-run", "/run"], check=True)
    os.makedirs("/run/netns", exist_ok=True)
    # Mount point for each sidecar's private tmpfs holding its key and certificate.
    os.makedirs("/run/isthmus-identity", exist_ok=True)
    daemon = subprocess.Popen([sys.executable, "-m", "isthmus.platform.local.daemon", *sys.argv[1:]])
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: daemon.send_signal(s))
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 1
        except InterruptedError:
            continue
        if pid == daemon.pid:
            return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    raise SystemExit(main())
