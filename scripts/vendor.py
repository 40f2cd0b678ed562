"""Fetch the dashboard's front-end libraries from the npm registry, or check the copies.

Each library is pinned in `drainpipe/query/static/vendor/vendor.json` by version and by
the registry's sha512 integrity of its tarball; the files taken from it (and its
license) are listed with their sha256. `python scripts/vendor.py` downloads each
tarball, refuses it unless its integrity matches the pin, and writes the files;
`python scripts/vendor.py --check` downloads again and fails unless the vendored files
are exactly those of the pinned tarball. Neither needs Node.js.

To move to a new version: set "version" and "integrity" (from
`https://registry.npmjs.org/<name>/<version>`, field dist.integrity), run this script,
and commit the manifest with the files.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import sys
import tarfile
import urllib.request
from pathlib import Path

VENDOR = Path(__file__).resolve().parent.parent / "drainpipe" / "query" / "static" / "vendor"
MANIFEST = VENDOR / "vendor.json"
REGISTRY = "https://registry.npmjs.org"


def tarball(name: str, version: str, integrity: str) -> tarfile.TarFile:
    url = f"{REGISTRY}/{name}/-/{name.split('/')[-1]}-{version}.tgz"
    with urllib.request.urlopen(url, timeout=60) as response:
        data = response.read()
    algorithm, _, want = integrity.partition("-")
    got = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if got != want:
        sys.exit(f"{url}: integrity {algorithm}-{got} is not the pinned {integrity}; not using it")
    return tarfile.open(fileobj=io.BytesIO(data), mode="r:gz")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify, write nothing")
    args = parser.parse_args()
    manifest = json.loads(MANIFEST.read_text())
    problems = []
    for lib in manifest["libraries"]:
        archive = tarball(lib["name"], lib["version"], lib["integrity"])
        for entry in lib["files"]:
            member = archive.extractfile(f"package/{entry['from']}")
            if member is None:
                sys.exit(f"{lib['name']}@{lib['version']} has no file {entry['from']}")
            data = member.read()
            digest = hashlib.sha256(data).hexdigest()
            target = VENDOR / lib["dir"] / entry["to"]
            if args.check:
                if not target.exists() or target.read_bytes() != data:
                    problems.append(f"{target} differs from {lib['name']}@{lib['version']}")
                elif digest != entry["sha256"]:
                    problems.append(f"{target}: manifest sha256 is stale ({digest})")
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            entry["sha256"] = digest
            print(f"{lib['name']}@{lib['version']} {entry['from']} -> {target}")
    if args.check:
        for problem in problems:
            print(problem, file=sys.stderr)
        print("vendored files match their pinned tarballs" if not problems else "check failed")
        return 1 if problems else 0
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
