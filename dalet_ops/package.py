"""`package`: `chalice package`, then bytecode compiled into the deployment zip.

Lambda runs a .zip package from a read-only folder, so without bytecode in the zip every
cold start compiles each module it imports from source, and cannot keep the result:
botocore alone takes about 0.4 s of a 2-core machine that way (bench/coldstart.py).
Chalice's packager ships source only and has no option to compile, so this adds, next to
every .py file in the zip, the `__pycache__/NAME.cpython-3XY.pyc` that Python looks for,
compiled with unchecked-hash invalidation (PEP 552): valid whatever dates the files get
when Lambda unzips them, and used as long as the runtime is the same Python minor version,
which it is: Chalice picks the Lambda runtime from the Python version that packages.
"""
from __future__ import annotations

import compileall
import json
import py_compile
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from dalet_ops.stage import Stage

CHALICE = Path(sys.executable).parent / "chalice"
DEPLOYMENT_ZIP = "deployment.zip"


class PackageError(RuntimeError):
    pass


@dataclass(frozen=True)
class Compiled:
    sources: int          # .py files in the zip
    added: int            # .pyc files added (a few vendored files may not compile: they stay source)
    zipped_before: int
    zipped_after: int


def runtime_tag() -> str:
    """The Lambda runtime this interpreter's bytecode is valid for, e.g. python3.11."""
    return f"python{sys.version_info.major}.{sys.version_info.minor}"


def chalice_package(stage: Stage, out: Path, merge_template: Path | None) -> None:
    command = [str(CHALICE), "package", "--stage", stage.name]
    if merge_template is not None:
        command += ["--merge-template", str(merge_template)]
    finished = subprocess.run([*command, str(out)], cwd=stage.project_dir, capture_output=True, text=True)
    if finished.returncode != 0:
        raise PackageError(f"chalice package failed:\n{finished.stdout}{finished.stderr}")


def check_runtime(template_file: Path) -> None:
    """Refuse to add bytecode the template's functions would not use."""
    template = json.loads(template_file.read_text())
    runtimes = {resource.get("Properties", {}).get("Runtime") for resource in template.get("Resources", {}).values()
                if resource.get("Type") == "AWS::Serverless::Function"}
    if runtimes != {runtime_tag()}:
        raise PackageError(f"the template's Lambda runtime is {sorted(map(str, runtimes))}, but this is "
                           f"{runtime_tag()}: bytecode compiled here would not be used")


def compile_into_zip(zip_path: Path) -> Compiled:
    """Add unchecked-hash .pyc files for the zip's .py files, in place."""
    zipped_before = zip_path.stat().st_size
    with tempfile.TemporaryDirectory(prefix="dalet-bytecode-") as folder:
        unpacked = Path(folder) / "package"
        with zipfile.ZipFile(zip_path) as archive:
            entries = archive.infolist()
            archive.extractall(unpacked)
        sources = [entry.filename for entry in entries if entry.filename.endswith(".py")]
        for stale in unpacked.rglob("*.pyc"):
            stale.unlink()
        compileall.compile_dir(unpacked, quiet=2, workers=1,
                               invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
        compiled = sorted(path for path in unpacked.rglob("*.pyc"))
        rewritten = zip_path.with_suffix(".compiling")
        with zipfile.ZipFile(zip_path) as original, \
                zipfile.ZipFile(rewritten, "w", compression=zipfile.ZIP_DEFLATED) as target:
            for entry in entries:
                if not entry.filename.endswith(".pyc"):  # Chalice also ships whatever chalicelib/__pycache__ holds
                    target.writestr(entry, original.read(entry))
            for path in compiled:
                target.write(path, path.relative_to(unpacked).as_posix())
    rewritten.replace(zip_path)
    return Compiled(len(sources), len(compiled), zipped_before, zip_path.stat().st_size)


def package(stage: Stage, out: Path, merge_template: Path | None) -> Compiled:
    chalice_package(stage, out, merge_template)
    check_runtime(out / "sam.json")
    return compile_into_zip(out / DEPLOYMENT_ZIP)
