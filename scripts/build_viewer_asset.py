"""Rebuild tui/assets/niivue/niivue.umd.js from the pinned npm tarball of @niivue/niivue.

    python scripts/build_viewer_asset.py              # runs `npm pack @niivue/niivue@VERSION`
    python scripts/build_viewer_asset.py --tarball niivue-niivue-0.69.0.tgz

The tarball is checked against the sha512 integrity the npm registry publishes for that version
(`npm view @niivue/niivue@0.69.0 dist.integrity`); a different tarball is refused. The UMD bundle is
one classic script (no ES modules, no fetch of its own files), which is what works from file:// pages.
NOTICE.txt beside it is kept by hand (the tarball has no LICENSE file).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "@niivue/niivue"
VERSION = "0.69.0"
INTEGRITY = "sha512-YMjQvJgD1W2b7DuoxkwlC4VxbrgIePRJ5qyQzXKxi2v2MBVg285P/CIQyg46oDDGDIcaNlbd+MhtO/edMbXJkA=="
TARBALL_URL = "https://registry.npmjs.org/@niivue/niivue/-/niivue-0.69.0.tgz"
MEMBER = "package/dist/niivue.umd.js"
TARGET = Path(__file__).resolve().parents[1] / "tui" / "assets" / "niivue"


def integrity(data: bytes) -> str:
    """npm's Subresource-Integrity string of a tarball."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def fetch(workdir: Path) -> Path:
    """`npm pack` the pinned version into `workdir` (the npm client, not a hand-made download)."""
    subprocess.run(["npm", "pack", f"{PACKAGE}@{VERSION}", "--silent"], cwd=workdir, check=True,
                   stdout=subprocess.DEVNULL)
    return next(workdir.glob("niivue-niivue-*.tgz"))


def build(tarball: Path) -> Path:
    """Check the tarball, extract the UMD bundle into the assets and record where it came from."""
    data = tarball.read_bytes()
    if integrity(data) != INTEGRITY:
        raise SystemExit(f"{tarball}: integrity {integrity(data)} is not the pinned {INTEGRITY}")
    with tarfile.open(tarball) as archive:
        bundle = archive.extractfile(MEMBER)
        if bundle is None:
            raise SystemExit(f"{tarball}: no {MEMBER}")
        script = bundle.read()
    TARGET.mkdir(parents=True, exist_ok=True)
    (TARGET / "niivue.umd.js").write_bytes(script)
    source = {"package": PACKAGE, "version": VERSION, "tarball": TARBALL_URL, "integrity": INTEGRITY,
              "member": MEMBER, "sha256": hashlib.sha256(script).hexdigest(), "license": "BSD-2-Clause"}
    (TARGET / "SOURCE.json").write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")
    return TARGET / "niivue.umd.js"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tarball", type=Path, help="a local copy of the npm tarball (else: npm pack)")
    args = parser.parse_args(argv)
    if args.tarball:
        out = build(args.tarball)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            out = build(fetch(Path(tmp)))
    print(f"{out} ({out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
