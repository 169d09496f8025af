#!/usr/bin/env python3
"""The wheels that a lent GPU machine needs: gsmlp's dependencies that its image lacks.

The lent machine (CPython 3.12, manylinux x86_64, no internet) runs scripts/gpu_check.sh with its own
torch. Its image holds most of gsmlp's dependencies (scripts/gpu_image_packages.txt lists them); this helper
lists the rest, downloads them as cp312 manylinux x86_64 wheels into a git-ignored folder (default .whl/),
checks that wheels and working tree together fit in what one device call carries (64 MiB), and checks that
the set installs with `pip install --no-index --no-deps --target DIR`.

Run it with a Python that has pip and `packaging` (the project's .venv has both):

  .venv/bin/python scripts/gpu_wheels.py --list     # the plan, nothing downloaded
  .venv/bin/python scripts/gpu_wheels.py            # download into .whl/, check size and install

Exit status: 0 done, 1 a download, size or install check failed (the message says which), 2 bad usage.
"""

from __future__ import annotations

import argparse
import email.parser
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

try:
    from packaging.markers import default_environment
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import Version
except ImportError:  # pragma: no cover - depends on the interpreter that runs the helper
    sys.exit("gpu_wheels.py needs the `packaging` module: run it with the project's .venv/bin/python")

REPO_ROOT = Path(__file__).resolve().parents[1]
IMAGE_FILE = REPO_ROOT / "scripts" / "gpu_image_packages.txt"
CARRY_LIMIT = 64 * 1024 * 1024  # what one device call carries: working tree + carried paths
MIB = 1024 * 1024

# The lent machine: CPython 3.12 on Linux x86-64. Its torch 2.11 (CUDA 13.0) wheels are manylinux_2_28, so
# its glibc is at least 2.28: any wheel tagged for glibc 2.28 or older installs there.
PYTHON_VERSION = "3.12"
PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in (28, 27, 26, 24, 17)] + [
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
]
TARGET_TAGS = [
    "--python-version",
    PYTHON_VERSION,
    "--implementation",
    "cp",
    "--abi",
    "cp312",
    "--abi",
    "abi3",
    "--abi",
    "none",
    "--only-binary=:all:",
] + [arg for p in PLATFORMS for arg in ("--platform", p)]

# The test tools of the `dev` extra that gpu_check.sh needs (ruff only lints).
TEST_TOOLS = {"pytest"}

# Dependencies that cannot be carried, and what stands in for them on the lent machine.
NOT_CARRIED = {
    "onnxruntime-gpu": (
        "its cp312 wheel is about 256 MB (onnxruntime_gpu-1.31.1: 255.6 MB), four times what a call "
        "carries; the image's CPU `onnxruntime` stands in, so ONNX Runtime's CUDA provider cannot run on a "
        "lent machine"
    ),
}


@dataclass
class Need:
    requirement: Requirement
    origin: str  # "build", "runtime", "test" or "needed by NAME"
    decision: str  # "carry", "image", "not carried"
    why: str
    build_chain: bool = False  # the build backend or one of its dependencies

    @property
    def name(self) -> str:
        return canonicalize_name(self.requirement.name)


def fail(message: str) -> None:
    print(f"gpu_wheels.py: {message}", file=sys.stderr)
    raise SystemExit(1)


def read_image(path: Path) -> dict[str, str | None]:
    """NAME -> recorded version (None where only the name was read)."""
    image: dict[str, str | None] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        fail(f"cannot read the image's package list {path}: {exc}")
    for number, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:==(\S+))?", line)
        if not match:
            fail(f"{path}:{number}: {line!r} is neither NAME nor NAME==VERSION")
        image[canonicalize_name(match.group(1))] = match.group(2)
    return image


def project_requirements(pyproject: Path) -> list[tuple[Requirement, str]]:
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        fail(f"cannot read {pyproject}: {exc}")
    found = [(Requirement(r), "build") for r in data["build-system"]["requires"]]
    found += [(Requirement(r), "runtime") for r in data["project"]["dependencies"]]
    dev = data["project"].get("optional-dependencies", {}).get("dev", [])
    found += [(Requirement(r), "test") for r in dev if canonicalize_name(Requirement(r).name) in TEST_TOOLS]
    return found


def target_environment() -> dict[str, str]:
    env = default_environment()
    env.update(
        python_version=PYTHON_VERSION,
        python_full_version=PYTHON_VERSION + ".3",
        sys_platform="linux",
        platform_system="Linux",
        platform_machine="x86_64",
        os_name="posix",
        implementation_name="cpython",
        platform_python_implementation="CPython",
    )
    return env


def decide(
    requirement: Requirement, origin: str, image: dict[str, str | None], build_chain: bool = False
) -> Need:
    """Carry, take from the image, or cannot carry. The build backend and its dependencies are taken from the
    image only where the image's version was read and fits: gsmlp builds with --no-build-isolation, so the
    build must not hang on versions nobody recorded."""
    name = canonicalize_name(requirement.name)
    if name in NOT_CARRIED:
        return Need(requirement, origin, "not carried", NOT_CARRIED[name], build_chain)
    if name not in image:
        return Need(requirement, origin, "carry", "not in the image", build_chain)
    version = image[name]
    if version is None:
        if build_chain:
            return Need(
                requirement,
                origin,
                "carry",
                "build chain (pip install --no-build-isolation): the image's version is not recorded",
                build_chain,
            )
        return Need(requirement, origin, "image", "in the image (version not recorded)", build_chain)
    if requirement.specifier and not requirement.specifier.contains(Version(version), prereleases=True):
        return Need(
            requirement,
            origin,
            "carry",
            f"the image's {version} does not satisfy {requirement.specifier}",
            build_chain,
        )
    return Need(requirement, origin, "image", f"in the image ({version})", build_chain)


def plan(image: dict[str, str | None]) -> list[Need]:
    env = target_environment()
    needs = []
    for requirement, origin in project_requirements(REPO_ROOT / "pyproject.toml"):
        if requirement.marker and not requirement.marker.evaluate(env):
            continue
        needs.append(decide(requirement, origin, image, build_chain=origin == "build"))
    return needs


def pip_download(requirement: Requirement, dest: Path) -> Path:
    before = set(dest.iterdir())
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--no-deps",
        "-q",
        "-d",
        str(dest),
        *TARGET_TAGS,
        str(requirement),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        fail(
            f"pip could not download a cp{PYTHON_VERSION.replace('.', '')} manylinux x86_64 wheel of "
            f"{requirement}:\n{result.stderr.strip()[-2000:]}"
        )
    new = [p for p in set(dest.iterdir()) - before if p.suffix == ".whl"]
    if len(new) != 1:
        fail(f"pip download of {requirement} left {len(new)} new wheels in {dest}, expected 1")
    return new[0]


def wheel_metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
        if len(names) != 1:
            fail(f"{wheel.name} has {len(names)} .dist-info/METADATA files, expected 1")
        return email.parser.Parser().parsestr(archive.read(names[0]).decode("utf-8"))


def download(needs: list[Need], image: dict[str, str | None], folder: Path) -> list[tuple[Need, Path, str]]:
    """Downloads every carried need and, transitively, each of their dependencies that the image lacks."""
    env = dict(target_environment(), extra="")
    queue = [n for n in needs if n.decision == "carry"]
    got: dict[str, tuple[Need, Path, str]] = {}
    while queue:
        need = queue.pop(0)
        if need.name in got:
            _, _, version = got[need.name]
            if not need.requirement.specifier.contains(Version(version), prereleases=True):
                fail(f"{need.requirement} ({need.origin}) conflicts with the {version} already chosen")
            continue
        wheel = pip_download(need.requirement, folder)
        metadata = wheel_metadata(wheel)
        got[need.name] = (need, wheel, metadata["Version"])
        for text in metadata.get_all("Requires-Dist") or []:
            dependency = Requirement(text)
            if dependency.marker and not dependency.marker.evaluate(env):
                continue
            decided = decide(dependency, f"needed by {need.name}", image, need.build_chain)
            if decided.decision == "not carried":
                fail(f"{need.name} needs {dependency}, which cannot be carried: {decided.why}")
            if decided.decision == "carry":
                queue.append(decided)
    return list(got.values())


def working_tree_bytes() -> int:
    """Tracked files plus untracked files that git does not ignore: what a device call sends besides carry."""
    result = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        fail(f"git ls-files failed in {REPO_ROOT}: {result.stderr.strip()}")
    total = 0
    for name in result.stdout.split("\0"):
        path = REPO_ROOT / name
        if name and path.is_file() and not path.is_symlink():
            total += path.stat().st_size
    return total


def check_install(wheels: list[Path]) -> list[str]:
    """pip install --no-index --no-deps --target TMP: the command gpu_check.sh's install amounts to. On an
    interpreter other than 3.12, pip is told the lent machine's tags, so it judges them as that one would."""
    with tempfile.TemporaryDirectory(prefix="gsmlp-whl-check-") as target:
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "-q",
            "--no-index",
            "--no-deps",
            "--no-compile",
            "--target",
            target,
        ]
        if sys.version_info[:2] != tuple(int(v) for v in PYTHON_VERSION.split(".")):
            command += TARGET_TAGS
        result = subprocess.run(command + [str(w) for w in wheels], capture_output=True, text=True)
        if result.returncode != 0:
            fail(f"the wheels do not install with {' '.join(command[2:])}:\n{result.stderr.strip()[-2000:]}")
        return sorted(p.name for p in Path(target).iterdir())


def replace_folder(new: Path, dest: Path) -> None:
    """dest now holds exactly new's files; a failure before the renames leaves the old folder as it was."""
    old = None
    if dest.exists():
        old = dest.with_name(f"{dest.name}.old-{os.getpid()}")
        dest.rename(old)
    new.rename(dest)
    if old is not None:
        shutil.rmtree(old)


def print_plan(needs: list[Need]) -> None:
    width = max(len(str(n.requirement)) for n in needs)
    for need in needs:
        print(f"  {str(need.requirement):<{width}}  {need.origin:<8} {need.decision:<12} {need.why}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[1].rsplit("\n\nExit status", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Exit status: 0 done, 1 a download, size or install check failed, 2 bad usage.",
    )
    parser.add_argument("--list", action="store_true", help="print the plan only; download nothing")
    parser.add_argument(
        "--dest",
        type=Path,
        default=REPO_ROOT / ".whl",
        help="folder for the wheels, replaced as a whole (default: .whl/ in the repository; git-ignored)",
    )
    parser.add_argument(
        "--image",
        type=Path,
        default=IMAGE_FILE,
        help=f"the image's package list (default: {IMAGE_FILE.relative_to(REPO_ROOT)})",
    )
    args = parser.parse_args(argv)

    image = read_image(args.image)
    needs = plan(image)
    print(
        f"gsmlp's dependencies against the lent machine's image ({args.image.name}, {len(image)} packages):"
    )
    print_plan(needs)
    if args.list:
        return 0

    dest = args.dest.resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    folder.chmod(0o755)
    try:
        got = download(needs, image, folder)
        rows = [(w.name, w.stat().st_size, f"{need.origin}: {need.why}") for need, w, _ in got]
        installed = check_install([w for _, w, _ in got])
        wheel_bytes = sum(size for _, size, _ in rows)
        tree_bytes = working_tree_bytes()
        if wheel_bytes + tree_bytes > CARRY_LIMIT:
            fail(
                f"wheels {wheel_bytes / MIB:.2f} MiB + working tree {tree_bytes / MIB:.2f} MiB exceed the "
                f"{CARRY_LIMIT // MIB} MiB one device call carries"
            )
        (folder / "MANIFEST.txt").write_text(
            "# wheel\tbytes\twhy (written by scripts/gpu_wheels.py)\n"
            + "".join(f"{name}\t{size}\t{why}\n" for name, size, why in rows),
            encoding="utf-8",
        )
        replace_folder(folder, dest)
    finally:
        if folder.exists():
            shutil.rmtree(folder)

    print(f"\nwheels in {dest} (cp312 manylinux x86_64):")
    for name, size, why in rows:
        print(f"  {name:<58} {size / MIB:7.3f} MiB  {why}")
    print(
        f"  total {wheel_bytes / MIB:.3f} MiB in {len(rows)} wheels; with the working tree "
        f"({tree_bytes / MIB:.2f} MiB): {(wheel_bytes + tree_bytes) / MIB:.2f} MiB of the "
        f"{CARRY_LIMIT // MIB} MiB a device call carries"
    )
    print(f"install check: pip install --no-index --no-deps --target DIR installed {', '.join(installed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
