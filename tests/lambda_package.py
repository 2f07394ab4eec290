"""The Lambda deployment package as `chalice package --stage prod` builds it (tests and bench/).

The project is copied the way a fresh checkout looks (no __pycache__, no deploy
records), so what is measured or asserted is exactly what would be uploaded.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
CHALICE = Path(sys.executable).parent / "chalice"
MERGE_TEMPLATE = ".chalice/merge-template-prod.json"
# What a checkout holds besides app.py, chalicelib/ and .chalice/: all of it must stay out of the zip.
PROJECT_EXTRAS = ("dalet_ops", "tests", "bench", "docs")


class PackagingFailed(RuntimeError):
    pass


def copy_project(target: Path) -> None:
    """The whole checkout (code, tooling, tests, benchmarks), without caches and deploy records."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "deployments", "deployed", "node_modules", ".dalet*")
    for name in ("app.py", "requirements.txt", "README.md", "Makefile"):
        shutil.copy(PROJECT_DIR / name, target / name)
    for folder in ("chalicelib", ".chalice", *PROJECT_EXTRAS):
        if (PROJECT_DIR / folder).is_dir():
            shutil.copytree(PROJECT_DIR / folder, target / folder, ignore=ignore)


def build_package(workspace: Path, timeout: float = 900) -> Path:
    """Run `chalice package --stage prod --merge-template ...` on a copy of the project in
    `workspace`; the folder holding deployment.zip and sam.json."""
    project = workspace / "project"
    project.mkdir(parents=True, exist_ok=True)
    copy_project(project)
    environment = {key: value for key, value in os.environ.items() if not key.startswith("DALET_")}
    environment["AWS_DEFAULT_REGION"] = "us-east-1"
    finished = subprocess.run(
        [str(CHALICE), "package", "--stage", "prod", "--merge-template", MERGE_TEMPLATE, "out"],
        cwd=project, env=environment, capture_output=True, text=True, timeout=timeout,
    )
    if finished.returncode != 0:
        raise PackagingFailed(finished.stdout + finished.stderr)
    return project / "out"


def unzip(zip_path: Path, target: Path) -> Path:
    """Unpack as Lambda does into /var/task: source only, no bytecode written beside it."""
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(target)
    return target
