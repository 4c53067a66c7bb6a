"""Upload throughput against the real Nextcloud 29 kit: NextcloudDestination.upload vs `curl -T` of the same file.

Run: python tests/bench/bench_upload.py [--mib 300] [--chunk-mib 100] [--repeat 3]
Starts ../shared/nextcloud-server in a temp folder (or reuses MRISHARE_NEXTCLOUD_DIR + NC_PORT), then, interleaved
in each round so all see the same machine load: `curl -H 'Expect:' -T` (one plain PUT; the header stops curl's
1 s wait for a 100-continue that PHP's server never sends), our upload with the default settings (a file up to
single_put_mib=512 goes in one PUT), and our chunked v2 upload forced (single_put_mib=0: MKCOL, chunk PUTs,
MOVE). Ours include the quota look-up and the folder creation before. Prints the medians in MB/s and the
ratios to curl (target >= 90%). The chunked ratio has a ceiling near 50%: the server writes every byte twice
(the chunks, then the joined file in the MOVE), as the MOVE's own time shows.
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

from nextcloud_server import KEEP, NextcloudServer

from tui.core.credentials import Credentials, load_credentials
from tui.core.delivery.nextcloud import NextcloudDestination
from tui.core.events import drain


def curl_put(server: NextcloudServer, local: Path, name: str) -> float:
    """Seconds for one `curl -T` PUT."""
    url = f"{server.url}/remote.php/dav/files/{server.user}/{name}"
    start = time.perf_counter()
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Expect:",
                          "-u", f"{server.user}:{server.app_password}", "-T", str(local), url],
                         capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - start
    assert out.stdout in ("201", "204"), out.stdout
    return elapsed


def ours(dest: NextcloudDestination, local: Path, name: str) -> float:
    """Seconds for NextcloudDestination.upload."""
    start = time.perf_counter()
    drain(dest.upload(local, name))
    return time.perf_counter() - start


def destination(server: NextcloudServer, folder: Path, chunk_mib: int, single_put_mib: int,
                root: str) -> NextcloudDestination:
    creds = load_credentials(server.credentials(folder, chunk_mib=chunk_mib, single_put_mib=single_put_mib,
                                                remote_path=root, timeout_s=300))
    return NextcloudDestination(creds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=300, help="file size in MiB")
    parser.add_argument("--chunk-mib", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("curl") is None:
        print("curl not found", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        kept = os.environ.get(KEEP)
        server = NextcloudServer(Path(kept or Path(tmp) / "nc"), {"NC_PORT": os.environ.get("NC_PORT", "8089")})
        server.start()
        try:
            local = Path(tmp) / "package.zip"
            with open(local, "wb") as out:
                for _ in range(args.mib):
                    out.write(os.urandom(1 << 20))
            (Path(tmp) / "s").mkdir()
            (Path(tmp) / "c").mkdir()
            default = Credentials.__dataclass_fields__
            single = destination(server, Path(tmp) / "s", default["chunk_mib"].default,
                                 default["single_put_mib"].default, "bench-single")
            chunked = destination(server, Path(tmp) / "c", args.chunk_mib, 0, "bench-chunked")
            size_mb = local.stat().st_size / 1e6
            single_name = "single PUT" if local.stat().st_size <= single.single_put else "chunked"
            times: dict[str, list[float]] = {"curl -T": [], f"default ({single_name})": [], "chunked": []}
            for i in range(args.repeat):
                times["curl -T"].append(curl_put(server, local, f"curl-{i}.zip"))
                times[f"default ({single_name})"].append(ours(single, local, f"r{i}/package.zip"))
                times["chunked"].append(ours(chunked, local, f"r{i}/package.zip"))
                for name in (f"curl-{i}.zip", "bench-single", "bench-chunked"):
                    server.dav("DELETE", f"files/{server.user}/{name}")
                server.occ("trashbin:cleanup", "--all-users")
            curl_mbs = size_mb / statistics.median(times["curl -T"])
            print(f"file {args.mib} MiB, chunk {args.chunk_mib} MiB, median of {args.repeat}, real Nextcloud 29 kit")
            for what, seconds in times.items():
                mbs = size_mb / statistics.median(seconds)
                # the median of each round's ratio to curl cancels load that changes between rounds
                paired = statistics.median(c / t for c, t in zip(times["curl -T"], seconds, strict=True))
                print(f"{what:20s}: {mbs:7.1f} MB/s  ratio {mbs / curl_mbs:6.1%}  per round {paired:6.1%}  "
                      f"({', '.join(f'{t:.2f}' for t in seconds)} s)")
        finally:
            if not kept:
                server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
