"""What a user installs: one wheel whose only top-level package is `milvus_backup`, working when
installed plainly (not editable) into a fresh virtual environment, away from this checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [built] = out.glob("*.whl")
    return built


def test_the_wheel_holds_one_top_level_package(wheel: Path):
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"milvus_backup"}
    for sub in ("core", "tui", "cli", "api", "sandbox"):
        assert f"milvus_backup/{sub}/__init__.py" in names
    assert "milvus_backup/tui/app.tcss" in names  # the app's stylesheet travels with it
    assert not [n for n in names if "__pycache__" in n or n.startswith("milvus_backup/tests")]


def test_a_plain_install_in_a_fresh_venv_works(wheel: Path, tmp_path: Path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    # the dependencies come from this project's environment (no download); the package itself from the wheel
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MILVUS_BACKUP_PAUSE_AT")}
    env["HOME"] = str(tmp_path)  # the default log file goes under here, not into the working folder
    run = tmp_path / "elsewhere"
    run.mkdir()
    tool = env_dir / "bin" / "milvus-backup"
    helped = subprocess.run([str(tool), "--help"], cwd=run, env=env, capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0, helped.stderr
    assert "list-collections" in helped.stdout
    where = subprocess.run(
        [
            str(python),
            "-c",
            "import milvus_backup.core.service as s, milvus_backup.tui.app as a; print(s.__file__, a.__file__)",
        ],
        cwd=run,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert where.returncode == 0, where.stderr
    assert all(path.startswith(site) for path in where.stdout.split()), where.stdout  # the installed copy, not ours
    for bare in ("core", "tui", "cli", "api"):
        found = subprocess.run([str(python), "-c", f"import {bare}"], cwd=run, env=env, capture_output=True)
        assert found.returncode != 0, f"a bare `{bare}` package is importable"
    # a command that reaches the engine: no Milvus on port 1, so one clear line and exit 1, nothing written here
    refused = subprocess.run(
        [str(tool), "list-collections"],
        cwd=run,
        env={**env, "MILVUS_PORT": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 1, refused.stderr
    assert "Traceback" not in refused.stderr
    assert ":1" in refused.stderr.strip().splitlines()[-1], refused.stderr
    assert list(run.iterdir()) == []
