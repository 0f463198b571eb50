"""The container image holds every native library the service needs, proven without a Docker daemon.

Every native extension (``*.so``) that ``requirements.txt`` installs (its packages and their
dependencies, as installed in this venv) is read with ``readelf -d`` (the libraries it needs directly)
and ``ldd`` (where this host finds them). Each needed library must be one of:

- **bundled in its wheel**: ``ldd`` finds it inside site-packages (the wheel's RPATH, ``$ORIGIN``), or
  the same distribution ships a file of that name (auditwheel's ``<package>.libs``, ``mindspore/lib``:
  loaded by a sibling first);
- **a library of a Debian package the image has**: the base image's own packages (the listed baseline,
  ``python-3.11-slim-bookworm.packages``, source noted there) or one that the Dockerfile's
  ``apt-get install`` adds. Which package ships a library is :data:`DEBIAN_PACKAGE_OF`.

MindSpore's device plugins (Ascend, CUDA) and its MPI collective library need toolkits that only such
hardware has; they are left out of the walk, and a loaded engine is checked never to map them.
"""
from __future__ import annotations

import importlib.metadata as metadata
import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
BASE_IMAGE = "python:3.11-slim-bookworm"
BASELINE = Path(__file__).with_name("python-3.11-slim-bookworm.packages")

# Library (soname) -> the Debian 12 (bookworm) package that ships it, for every library a native extension of
# the runtime needs from the system. Made on a Debian 12 host with `dpkg -S '*/<soname>'` for each library the
# walk below reported as needed from the system (`test_the_library_map_agrees_with_dpkg` re-checks it wherever
# dpkg and the library are present). A library missing here fails the walk with that command to run.
DEBIAN_PACKAGE_OF = {
    "ld-linux-x86-64.so.2": "libc6",
    "libc.so.6": "libc6",
    "libdl.so.2": "libc6",
    "libm.so.6": "libc6",
    "libmvec.so.1": "libc6",
    "libpthread.so.0": "libc6",
    "libresolv.so.2": "libc6",
    "librt.so.1": "libc6",
    "libutil.so.1": "libc6",
    "libgcc_s.so.1": "libgcc-s1",
    "libstdc++.so.6": "libstdc++6",
    "libgomp.so.1": "libgomp1",
    "libz.so.1": "zlib1g",
    "libbz2.so.1": "libbz2-1.0",
    "libbz2.so.1.0": "libbz2-1.0",
    "liblzma.so.5": "liblzma5",
    "libcrypt.so.1": "libcrypt1",
    "libexpat.so.1": "libexpat1",
    "libffi.so.8": "libffi8",
    "libssl.so.3": "libssl3",
    "libcrypto.so.3": "libssl3",
}

# Files of a wheel that a CPU server never loads, and why (paths relative to site-packages).
OPTIONAL_PLUGINS = {
    "mindspore/lib/plugin/ascend/": "MindSpore's Ascend NPU plugin (needs Huawei's CANN toolkit)",
    "mindspore/lib/plugin/libmindspore_ascend.so": "MindSpore's Ascend NPU plugin (needs Huawei's CANN toolkit)",
    "mindspore/lib/plugin/libmindspore_gpu.so": "MindSpore's CUDA plugin (needs CUDA and cuDNN)",
    "mindspore/lib/plugin/gpu": "MindSpore's CUDA plugin (needs CUDA and cuDNN)",
    "mindspore/lib/libmpi_collective.so": "MindSpore's OpenMPI collectives (distributed training under mpirun)",
}

NATIVE = re.compile(r"\.so(\.\d+)*$")


# --- what requirements.txt installs ---------------------------------------------------------------------

def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def runtime_distributions() -> dict[str, metadata.Distribution]:
    """requirements.txt's packages and, recursively, their dependencies (markers and extras applied)."""
    pending = [Requirement(line.split("#", 1)[0].strip()) for line in (REPO / "requirements.txt").read_text().splitlines()
               if line.split("#", 1)[0].strip()]
    found: dict[str, metadata.Distribution] = {}
    extras_seen: dict[str, set[str]] = {}
    while pending:
        requirement = pending.pop()
        key = _key(requirement.name)
        extras = set(requirement.extras)
        if key in found and extras <= extras_seen[key]:
            continue
        distribution = metadata.distribution(requirement.name)
        found[key] = distribution
        extras_seen.setdefault(key, set()).update(extras)
        for text in distribution.requires or []:
            dependency = Requirement(text)
            if dependency.marker is None or any(dependency.marker.evaluate({"extra": extra})
                                                for extra in (extras_seen[key] or {""})):
                pending.append(dependency)
    return found


def _optional(relative: str) -> bool:
    return any(relative.startswith(prefix) for prefix in OPTIONAL_PLUGINS)


def native_extensions() -> list[tuple[metadata.Distribution, Path, str]]:
    """``(distribution, absolute path, path in site-packages)`` of every native file the runtime installs."""
    out = []
    for distribution in runtime_distributions().values():
        for file in distribution.files or []:
            relative = str(file)
            if NATIVE.search(relative) and not _optional(relative):
                out.append((distribution, Path(distribution.locate_file(file)), relative))
    return out


# --- what the image has -------------------------------------------------------------------------------

def dockerfile_instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of the Dockerfile, continuation lines joined, comments dropped."""
    lines, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        if raw.lstrip().startswith("#") and not current:
            continue
        current += raw.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        if current.strip():
            lines.append(current.strip())
        current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def dockerfile_apt_packages() -> set[str]:
    """Every package named by an ``apt-get install`` of a RUN instruction (options and version pins dropped)."""
    packages = set()
    for instruction, arguments in dockerfile_instructions():
        if instruction != "RUN":
            continue
        for command in re.split(r"&&|;|\|\|", arguments):
            words = command.split()
            for start in range(len(words) - 1):
                if words[start] in {"apt-get", "apt"} and "install" in words[start + 1:]:
                    after = words[words.index("install", start) + 1:]
                    packages |= {word.split("=", 1)[0] for word in after if not word.startswith("-")}
                    break
    return packages


def baseline_packages() -> set[str]:
    return {line.strip() for line in BASELINE.read_text().splitlines() if line.strip() and not line.startswith("#")}


# --- the libraries an ELF file needs -------------------------------------------------------------------------

def needed_libraries(path: Path) -> list[str]:
    dynamic = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True, check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", dynamic)


@cache
def ldd_resolved(path: Path) -> dict[str, str]:
    """What this host's loader makes of ``path``'s libraries: soname -> path (or "not found")."""
    done = subprocess.run(["ldd", str(path)], capture_output=True, text=True)
    return {m.group(1): m.group(2) for m in re.finditer(r"^\s*(\S+) => (not found|\S+)", done.stdout, re.M)}


def _requires_tools():
    missing = [tool for tool in ("readelf", "ldd") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (binutils, libc-bin)")


# --- the tests ---------------------------------------------------------------------------------------------

def test_the_dockerfile_builds_on_the_base_image_the_baseline_lists():
    froms = [arguments.split()[0] for instruction, arguments in dockerfile_instructions() if instruction == "FROM"]
    assert froms == [BASE_IMAGE], (froms, "pin the base image whose packages python-3.11-slim-bookworm.packages lists")


def test_the_venv_holds_what_requirements_txt_pins():
    distributions = runtime_distributions()
    for line in (REPO / "requirements.txt").read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            requirement = Requirement(text)
            assert distributions[_key(requirement.name)].version in requirement.specifier, requirement


def test_every_library_a_native_extension_needs_is_bundled_or_installed_in_the_image():
    _requires_tools()
    image = baseline_packages() | dockerfile_apt_packages()
    extensions = native_extensions()
    assert len(extensions) > 100  # the walk found the wheels (MindSpore alone ships dozens)
    site_packages = {str(Path(d.locate_file("")).resolve()) for d, _, _ in extensions}
    problems: dict[str, set[str]] = {}
    for distribution, path, relative in extensions:
        shipped = {Path(str(file)).name for file in distribution.files or []}
        for library in needed_libraries(path):
            if library in shipped:
                continue  # bundled in the wheel
            where = ldd_resolved(path).get(library, "")
            if any(where.startswith(root) for root in site_packages):
                continue  # bundled: found through the wheel's RPATH
            package = DEBIAN_PACKAGE_OF.get(library)
            if package is None:
                problems.setdefault(f"{library}: not bundled and not in DEBIAN_PACKAGE_OF (find its package with "
                                    f"`dpkg -S '*/{library}'` on Debian 12)", set()).add(relative)
            elif package not in image:
                problems.setdefault(f"{library}: Debian package {package} is neither in the base image nor in the "
                                    "Dockerfile's apt-get install", set()).add(relative)
    assert not problems, "\n".join(f"{problem}\n    needed by {len(users)} file(s), e.g. {sorted(users)[:3]}"
                                   for problem, users in sorted(problems.items()))


def test_the_apt_line_installs_nothing_the_base_image_already_has():
    assert not dockerfile_apt_packages() & baseline_packages()


def test_the_left_out_plugins_are_never_loaded_by_a_working_engine(speech):
    """Load the model and embed a recording as a server process does, then read what the process mapped."""
    code = (
        "import django, pathlib; django.setup()\n"
        "from speakers.runtime.inference_owner import embed_prepared, prepare\n"
        "import faiss, psycopg, soundfile\n"
        f"embed_prepared(prepare(pathlib.Path({str(REPO / 'tests/fixtures/speech/a_snt1.wav')!r}).read_bytes()))\n"
        "print('\\n'.join(sorted({l.split()[-1] for l in open('/proc/self/maps') if '.so' in l})))\n")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "voiceprint_project.settings", "VOICEPRINT_WARMUP": "false"}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    mapped = [line for line in done.stdout.splitlines() if line.startswith("/")]
    assert any("mindspore" in path for path in mapped), mapped
    loaded_plugins = [path for path in mapped for prefix in OPTIONAL_PLUGINS if f"site-packages/{prefix}" in path]
    assert loaded_plugins == []
    # Every runtime file the engine loaded was walked (other venv packages, e.g. brotli, load only where installed).
    runtime_files = {str(Path(d.locate_file(f)).resolve()) for d in runtime_distributions().values()
                     for f in d.files or []}
    checked = {str(path.resolve()) for _, path, _ in native_extensions()}
    unchecked = [path for path in mapped if str(Path(path).resolve()) in runtime_files - checked]
    assert unchecked == [], "the service loaded native files the walk does not check"


def test_the_library_map_agrees_with_dpkg_on_a_debian_12_host():
    release = Path("/etc/os-release").read_text() if Path("/etc/os-release").is_file() else ""
    if "VERSION_CODENAME=bookworm" not in release or shutil.which("dpkg") is None:
        pytest.skip("the map is of Debian 12 (bookworm) packages; this host is not one")
    checked = 0
    for library, package in DEBIAN_PACKAGE_OF.items():
        owner = subprocess.run(["dpkg", "-S", f"*/{library}"], capture_output=True, text=True)
        if owner.returncode != 0:
            continue  # not installed on this host: nothing to compare
        packages = {line.split(":", 1)[0] for line in owner.stdout.splitlines()}
        assert package in packages, (library, package, owner.stdout)
        checked += 1
    assert checked >= len(DEBIAN_PACKAGE_OF) // 2
