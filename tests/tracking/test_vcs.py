import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from ml_experiment.tracking import vcs
from ml_experiment.tracking.vcs import GitInfo, git_info

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@pytest.fixture(autouse=True)
def git_identity(monkeypatch, tmp_path):
    # A bare machine has no git identity and may have a user config: isolate both.
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in ("GIT_AUTHOR", "GIT_COMMITTER"):
        monkeypatch.setenv(f"{var}_NAME", "Test")
        monkeypatch.setenv(f"{var}_EMAIL", "test@example.com")
    for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(var, raising=False)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "train.py").write_text("print('v1')\n")
    (root / ".gitignore").write_text("*.log\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "first")
    return root


def test_clean_repo(repo):
    info = git_info(repo)
    assert isinstance(info, GitInfo)
    assert info.commit == git(repo, "rev-parse", "HEAD")
    assert len(info.commit) == 40
    assert info.branch == "main"
    assert info.dirty is False
    assert info.diff == ""
    assert Path(info.root).resolve() == repo.resolve()
    assert info.remote is None


def test_file_and_subfolder_paths_find_the_repo(repo):
    (repo / "pkg").mkdir()
    assert git_info(repo / "train.py").root == git_info(repo / "pkg").root == git_info(repo).root


def test_dirty_repo_diff_has_staged_unstaged_and_untracked(repo):
    (repo / "train.py").write_text("print('v2')\n")  # unstaged
    (repo / "staged.py").write_text("x = 1\n")
    git(repo, "add", "staged.py")
    (repo / "new.py").write_text("y = 2\n")  # untracked
    (repo / "data.bin").write_bytes(bytes(range(256)))  # untracked binary
    (repo / "run.log").write_text("ignored\n")  # ignored

    info = git_info(repo)
    assert info.dirty is True
    assert "+print('v2')" in info.diff
    assert "diff --git a/staged.py b/staged.py" in info.diff
    assert "diff --git a/new.py b/new.py" in info.diff
    assert "+y = 2" in info.diff
    # Untracked data is not code: listed by name, size and hash, never in the patch.
    assert "data.bin" not in info.diff
    digest = hashlib.sha256(bytes(range(256))).hexdigest()
    assert info.manifest == {"data.bin": {"bytes": 256, "sha256": digest}}
    assert "run.log" not in info.diff


def test_patch_reproduces_the_working_tree(repo, tmp_path):
    (repo / "train.py").write_text("print('v2')\n")
    (repo / "sub").mkdir()
    (repo / "sub" / "new.py").write_text("y = 2\n")
    (repo / "data.bin").write_bytes(bytes(range(256)) * 4)
    git(repo, "add", "data.bin")  # tracked binaries travel in the patch
    info = git_info(repo)

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    git(clone, "checkout", "-q", info.commit)
    patch = tmp_path / "changes.patch"
    patch.write_text(info.diff)
    git(clone, "apply", str(patch))
    for name in ("train.py", "sub/new.py", "data.bin"):
        assert (clone / name).read_bytes() == (repo / name).read_bytes()


def test_only_untracked_files_make_it_dirty(repo):
    (repo / "notes.txt").write_text("hello\n")
    info = git_info(repo)
    assert info.dirty is True
    assert "+hello" in info.diff


def test_ignored_files_do_not_make_it_dirty(repo):
    (repo / "out.log").write_text("noise\n")
    assert git_info(repo).dirty is False


def test_untracked_files_are_capped(repo, monkeypatch):
    monkeypatch.setattr(vcs, "_MAX_UNTRACKED_BYTES", 1000)
    (repo / "a_small.txt").write_text("small\n")
    (repo / "b_big.txt").write_text("x" * 5000 + "\n")
    info = git_info(repo)
    assert "+small" in info.diff
    assert "x" * 100 not in info.diff
    assert "untracked files not included" in info.diff
    assert "b_big.txt" in info.diff


def test_detached_head(repo):
    (repo / "train.py").write_text("print('v2')\n")
    git(repo, "commit", "-q", "-am", "second")
    first = git(repo, "rev-parse", "HEAD~1")
    git(repo, "checkout", "-q", "--detach", first)
    info = git_info(repo)
    assert info.branch is None
    assert info.commit == first
    assert info.dirty is False


def test_repo_without_commits(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    info = git_info(root)
    assert info == GitInfo(
        commit=None, branch="main", dirty=False, diff="", root=info.root, remote=None, manifest={}
    )

    (root / "a.py").write_text("a = 1\n")
    (root / "b.py").write_text("b = 2\n")
    git(root, "add", "b.py")  # staged but never committed
    info = git_info(root)
    assert info.commit is None
    assert info.dirty is True
    assert "diff --git a/a.py b/a.py" in info.diff
    assert "diff --git a/b.py b/b.py" in info.diff
    assert "+a = 1" in info.diff
    assert "+b = 2" in info.diff


def test_not_a_repo(tmp_path, monkeypatch):
    folder = tmp_path / "plain"
    folder.mkdir()
    # Stop git from finding a repository above tmp_path.
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert git_info(folder) is None


def test_missing_path_and_no_git(tmp_path, repo, monkeypatch):
    assert git_info(tmp_path / "does" / "not" / "exist") is None
    monkeypatch.setattr(vcs.shutil, "which", lambda name: None)
    assert git_info(repo) is None


def test_remote_credentials_are_stripped(repo):
    git(repo, "remote", "add", "upstream", "https://example.com/other.git")
    git(repo, "remote", "add", "origin", "https://alice:s3cret@github.com/org/project.git")
    info = git_info(repo)
    assert info.remote == "https://github.com/org/project.git"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://alice:pw@host/r.git", "https://host/r.git"),
        ("https://ghp_token123@github.com/o/r.git", "https://github.com/o/r.git"),
        ("https://host:8443/r.git", "https://host:8443/r.git"),
        ("ssh://git@host/r.git", "ssh://git@host/r.git"),
        ("ssh://git:pw@host/r.git", "ssh://host/r.git"),
        ("git@github.com:org/r.git", "git@github.com:org/r.git"),
        ("/srv/git/r.git", "/srv/git/r.git"),
    ],
)
def test_strip_credentials(url, expected):
    assert vcs._strip_credentials(url) == expected


def test_first_remote_when_no_origin(repo):
    git(repo, "remote", "add", "upstream", "https://example.com/other.git")
    assert git_info(repo).remote == "https://example.com/other.git"


def test_never_raises(repo, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("unexpected")

    monkeypatch.setattr(vcs, "_git", boom)
    assert git_info(repo) is None


def test_knowledge_center_files_are_never_code(repo):
    # A repository whose .gitignore does not list the knowledge center (issue 10's bug).
    (repo / "mlruns.db").write_bytes(b"SQLite format 3\0" + bytes(5000))
    (repo / "mlruns.db-wal").write_bytes(bytes(100))
    (repo / "mlruns.db.lock").write_text("")
    (repo / "mlartifacts" / "1" / "abc").mkdir(parents=True)
    (repo / "mlartifacts" / "1" / "abc" / "model.py").write_text("w = 1\n")
    (repo / "optuna-studies.journal").write_text("{}\n")
    exclude = [repo / "mlruns.db", repo / "mlartifacts", repo / "optuna-studies.journal"]
    info = git_info(repo, exclude)
    assert info.dirty is False
    assert info.diff == ""
    assert info.manifest == {}


def test_untracked_source_enters_the_patch_data_the_manifest(repo, monkeypatch):
    monkeypatch.setattr(vcs, "_MAX_SOURCE_FILE_BYTES", 100)
    (repo / "helper.py").write_text("z = 3\n")
    (repo / "big.py").write_text("#" * 200 + "\n")  # source over the per-file bound: data
    (repo / "weights.pt").write_bytes(b"\1" * 10)
    info = git_info(repo)
    assert info.dirty is True
    assert "+z = 3" in info.diff
    assert "big.py" not in info.diff and "weights.pt" not in info.diff
    assert set(info.manifest) == {"big.py", "weights.pt"}
    assert info.manifest["weights.pt"]["sha256"] == hashlib.sha256(b"\1" * 10).hexdigest()


def test_only_untracked_data_is_not_dirty(repo):
    (repo / "results.csv.gz").write_bytes(b"\0\1\2")
    info = git_info(repo)
    assert info.dirty is False
    assert info.diff == ""
    assert list(info.manifest) == ["results.csv.gz"]
