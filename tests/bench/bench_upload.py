"""Upload throughput: NextcloudDestination.upload vs one `curl -T` PUT to the same stand-in server.

Run: python tests/bench/bench_upload.py [--mib 256] [--chunk-mib 100] [--repeat 3]
Prints MB/s of both and the ratio (target: ours >= 90% of curl). Sizes above --chunk-mib go through
chunking v2 (MKCOL, chunk PUTs, MOVE, size check); the curl reference is a single plain PUT.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from nextcloud_standin import StandinNextcloud  # noqa: E402

from tui.core.credentials import parse_credentials  # noqa: E402
from tui.core.events import drain  # noqa: E402
from tui.core.nextcloud import NextcloudDestination  # noqa: E402

USER, PASSWORD = "bench", "bench-app-password-0123456789"


def curl_put(base: str, local: Path, name: str) -> float:
    """Seconds for one `curl -T` PUT."""
    url = f"{base}/remote.php/dav/files/{USER}/{name}"
    start = time.perf_counter()
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-u", f"{USER}:{PASSWORD}",
                          "-T", str(local), url], capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - start
    assert out.stdout in ("201", "204"), out.stdout
    return elapsed


def ours(dest: NextcloudDestination, local: Path, name: str) -> float:
    """Seconds for NextcloudDestination.upload (including its quota check and size verification)."""
    start = time.perf_counter()
    drain(dest.upload(local, name))
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="file size in MiB")
    parser.add_argument("--chunk-mib", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("curl") is None:
        print("curl not found", file=sys.stderr)
        return 2
    # RAM-backed storage when available, so disk write-back does not decide the race
    storage = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory() as tmp, StandinNextcloud(users={USER: PASSWORD}, storage=storage) as server:
        local = Path(tmp) / "package.zip"
        with open(local, "wb") as out:
            for _ in range(args.mib):
                out.write(os.urandom(1 << 20))
        creds = parse_credentials({"nextcloud_baseurl": server.base_url, "username": USER, "password": PASSWORD,
                                   "remote_path": "bench", "chunk_mib": args.chunk_mib}, Path("bench"))
        dest = NextcloudDestination(creds)
        size_mb = local.stat().st_size / 1e6
        t_curl, t_ours = [], []
        home = server.files_root(USER)
        for i in range(args.repeat):  # interleaved, so both see the same page cache and machine load
            t_curl.append(curl_put(server.base_url, local, f"curl-{i}.zip"))
            (home / f"curl-{i}.zip").unlink()
            t_ours.append(ours(dest, local, f"ours-{i}/package.zip"))
            shutil.rmtree(home / "bench")
        assembly = [r.elapsed_s for r in server.requests if r.method == "MOVE"]
        curl_mbs, ours_mbs = size_mb / statistics.median(t_curl), size_mb / statistics.median(t_ours)
        mode = "chunked v2" if local.stat().st_size > args.chunk_mib << 20 else "single PUT"
        print(f"file {args.mib} MiB, chunk {args.chunk_mib} MiB ({mode}), median of {args.repeat}")
        print(f"curl -T   : {curl_mbs:8.1f} MB/s  ({', '.join(f'{t:.2f}' for t in t_curl)} s)")
        print(f"mrishare  : {ours_mbs:8.1f} MB/s  ({', '.join(f'{t:.2f}' for t in t_ours)} s)")
        print(f"ratio     : {ours_mbs / curl_mbs:8.1%}  (target >= 90%)")
        if assembly:  # a property of chunking v2 on the server, not of the client
            joined = statistics.median(assembly)
            transfer_mbs = size_mb / (statistics.median(t_ours) - joined)
            print(f"of which the server joining the chunks (MOVE): median {joined:.2f} s")
            print(f"mrishare without the join: {transfer_mbs:8.1f} MB/s  ratio {transfer_mbs / curl_mbs:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
