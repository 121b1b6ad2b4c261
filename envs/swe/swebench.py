"""``turngym/SWEBench-v0``: SWE-bench-format instances, one Docker image per instance.

Instance records (JSON list or JSONL), exactly SWE-bench's fields: ``instance_id, repo,
base_commit, patch, test_patch, problem_statement, FAIL_TO_PASS, PASS_TO_PASS`` (the two test
lists as JSON-encoded strings, as SWE-bench ships them, or as lists), plus optional ``version``,
``environment_setup_commit``, ``created_at``, ``hints_text``. Image: the record's ``image`` field,
else SWE-bench's naming ``sweb.eval.x86_64.<instance_id>`` (``__`` → ``_1776_``). Optional turngym
fields: ``repo_dir`` (default ``/testbed``) and ``python`` (default ``python3``; SWE-bench images
need ``/opt/miniconda3/envs/testbed/bin/python``). Test ids must be pytest node ids.

History: SWE-bench images hold the full upstream clone, future commits included. Before use each
image is derived once into a *history-free* image (:func:`clean_image`: ``/testbed/.git`` replaced
by a single-commit repository of the checked-out tree), and episodes copy the repo out of it into a
fresh git repository — the agent can never reach the fix through ``git log --all``.

:func:`build_fixture` builds a local fixture in exactly this format from three of the SWE-v0 repos:
per instance an image whose ``/testbed`` is a real git repo with the buggy ``base_commit`` *and a
future commit holding the fix* on another branch (so the history stripping is tested for real).
Docker backend only.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from pathlib import Path

from turngym.envs.swe.tasks import RepoTask, content_hash, split_patch, unified_diff

FIELDS = ("instance_id", "repo", "base_commit", "patch", "test_patch", "problem_statement", "FAIL_TO_PASS", "PASS_TO_PASS")
FIXTURE_REPOS = ("invoicer", "semver", "lrucache")
FIXTURE_IMAGE = "turngym-swebench-fixture"
CLEAN_IMAGE = "turngym-swebench-clean"
_GIT_ENV = {"HOME": "/tmp", "GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@example.com",
            "GIT_COMMITTER_NAME": "dev", "GIT_COMMITTER_EMAIL": "dev@example.com",
            "GIT_AUTHOR_DATE": "2024-01-01T00:00:00+0000", "GIT_COMMITTER_DATE": "2024-01-01T00:00:00+0000"}


class InstanceError(ValueError):
    """A record is not a valid SWE-bench instance; the message names the instance and field."""


def default_image(instance_id: str) -> str:
    return f"sweb.eval.x86_64.{instance_id.replace('__', '_1776_')}".lower()


def _test_list(value, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise InstanceError(f"{where}: not a JSON list ({exc.msg}); SWE-bench stores it as '[\"test_id\", ...]'") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InstanceError(f"{where}: must be a list of test ids, got {type(value).__name__}")
    return tuple(value)


def read_instances(path: str | Path) -> list[dict]:
    """Records from a ``.json`` list or a ``.jsonl`` file."""
    text = Path(path).read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        return list(json.loads(text))
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def to_task(record: dict) -> RepoTask:
    """A :class:`RepoTask` from one SWE-bench record (validated)."""
    iid = record.get("instance_id", "<no instance_id>")
    missing = [f for f in FIELDS if f not in record]
    if missing:
        raise InstanceError(f"instance {iid!r} lacks field(s) {missing}; SWE-bench instances have {list(FIELDS)}")
    f2p = _test_list(record["FAIL_TO_PASS"], f"instance {iid!r} FAIL_TO_PASS")
    p2p = _test_list(record["PASS_TO_PASS"], f"instance {iid!r} PASS_TO_PASS")
    if not f2p:
        raise InstanceError(f"instance {iid!r} has an empty FAIL_TO_PASS list")
    test_files = {path for path, _ in split_patch(record["test_patch"])}
    visible = tuple(t for t in p2p if t.split("::")[0] not in test_files)[:30]
    return RepoTask(
        task_id=f"swebench/{iid}", kind="swebench", problem_statement=record["problem_statement"], files={},
        hidden_tests={}, gold_patch=record["patch"], fail_to_pass=f2p, pass_to_pass=p2p, visible_tests=visible,
        visible_baseline=1.0, split="all", image=record.get("image") or default_image(iid),
        repo_dir=record.get("repo_dir", "/testbed"), python=record.get("python", "python3"),
        meta={"test_patch": record["test_patch"], "repo": record["repo"], "base_commit": record["base_commit"],
              "version": record.get("version", "")},
    )


def load_tasks(instances: str | None = None, *, clean: bool = True) -> list[RepoTask]:
    """Tasks from ``instances`` (a path), or the local fixture when ``None`` (built on first use).

    With ``clean`` (default) each task's image is replaced by its history-free derivative.
    """
    path = Path(instances) if instances else build_fixture()
    tasks = [to_task(r) for r in read_instances(path)]
    if clean:
        import dataclasses

        tasks = [dataclasses.replace(t, image=clean_image(t.image, t.repo_dir or "/testbed")) for t in tasks]
    return tasks


# ---- docker plumbing (Docker backend only) ---------------------------------------------------------
def _client():
    from turngym.sandbox.docker import docker_client

    return docker_client()


def _tar(files: dict[str, bytes], prefix: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(f"{prefix.strip('/')}/{path}")
            info.size, info.mode, info.mtime = len(data), 0o644, time.time()
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _image_exists(client, tag: str) -> bool:
    import docker.errors

    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def _derive(client, base: str, tag: str, script: str, files: dict[str, bytes] | None = None) -> str:
    """Run ``script`` as root (no network) in a container of ``base`` and commit it as ``tag``."""
    from turngym.sandbox.base import SandboxUnavailable

    container = client.containers.create(base, ["sleep", "infinity"], user="0:0", network_disabled=True,
                                         labels={"turngym.swebench.build": "1"}, working_dir="/")
    try:
        container.start()
        if files:
            container.put_archive("/", _tar(files, "/"))
        code, output = container.exec_run(["bash", "-c", script], environment=_GIT_ENV, user="0:0")
        if code != 0:
            raise SandboxUnavailable(f"building image {tag} from {base} failed (exit {code}): {output.decode()[-800:]}")
        repo, _, version = tag.partition(":")
        container.commit(repository=repo, tag=version or "latest", changes=['CMD ["/bin/sh"]', "WORKDIR /work"])
    finally:
        container.remove(force=True)
    return tag


def clean_image(image: str, repo_dir: str = "/testbed") -> str:
    """The history-free derivative of ``image`` (built once, cached as a Docker tag)."""
    client = _client()
    tag = f"{CLEAN_IMAGE}:{content_hash(image, client.images.get(image).id, repo_dir)}"
    if _image_exists(client, tag):
        return tag
    script = (
        f"cd {repo_dir} && rm -rf .git && git init -q && git add -A && git commit -q -m snapshot && "
        f"chmod -R a+rX {repo_dir}"
    )
    return _derive(client, image, tag, script)


def build_fixture(names: tuple[str, ...] = FIXTURE_REPOS) -> Path:
    """Build the local SWE-bench-format fixture (images + ``instances.jsonl``); returns the JSONL path."""
    from turngym.envs.swe.build import cache_root
    from turngym.envs.swe.build import load_tasks as load_swe
    from turngym.sandbox.image import ensure_image

    tasks = {t.meta["repo"]: t for t in load_swe("swe", names=tuple(sorted(names)))[0]}
    base = ensure_image()
    key = content_hash("fixture-v2", base, [tasks[n].to_dict() for n in names])
    out = cache_root() / key / "swebench_fixture.jsonl"
    client = _client()
    if out.exists() and all(_image_exists(client, r["image"]) for r in read_instances(out)):
        return out
    records = []
    for name in names:
        task = tasks[name]
        iid = f"turngym-fixtures__{name}-1"
        tag = f"{FIXTURE_IMAGE}:{name}-{key[:10]}"
        fixed = _apply_gold(task)
        test_patch = unified_diff({}, task.hidden_tests)
        staged = {f"stage/base/{p}": t.encode() for p, t in task.files.items()}
        staged.update({f"stage/future/{p}": t.encode() for p, t in {**fixed, **task.hidden_tests}.items()})
        script = (
            "set -e; mkdir -p /testbed && cd /testbed && git init -q && cp -r /stage/base/. . && git add -A && "
            "git commit -q -m 'release 1.0' && git rev-parse HEAD > /stage/base_commit && "
            "git checkout -q -b future && sleep 1 && cp -r /stage/future/. . && git add -A && git commit -q -m 'fix the bug (future)' && "
            "git checkout -q master 2>/dev/null || git checkout -q main; git diff --quiet HEAD && test -z \"$(git status --porcelain)\"; "
            "chmod -R a+rX /testbed; rm -rf /stage/base /stage/future"
        )
        _derive(client, base, tag, script, staged)
        records.append({
            "repo": f"turngym-fixtures/{name}", "instance_id": iid, "base_commit": _read_base_commit(client, tag),
            "patch": task.gold_patch, "test_patch": test_patch, "problem_statement": task.problem_statement,
            "hints_text": "", "created_at": "2024-01-01T00:00:00Z", "version": "1.0",
            "FAIL_TO_PASS": json.dumps(list(task.fail_to_pass)), "PASS_TO_PASS": json.dumps(list(task.pass_to_pass)),
            "environment_setup_commit": "", "image": tag,
        })
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in records))
    return out


def _read_base_commit(client, tag: str) -> str:
    container = client.containers.create(tag, ["cat", "/stage/base_commit"], network_disabled=True)
    try:
        container.start()
        container.wait()
        return container.logs().decode().strip()
    finally:
        container.remove(force=True)


def _apply_gold(task: RepoTask) -> dict[str, str]:
    """The fixed files of a file-based task (its gold patch applied with :func:`.tasks.patch_hunks`)."""
    from turngym.envs.swe.tasks import patch_hunks

    files = dict(task.files)
    for path, status, hunks in patch_hunks(task.gold_patch):
        if status == "delete":
            files.pop(path, None)
        elif status == "create":
            files[path] = hunks[0].new if hunks else ""
        else:
            for h in hunks:
                files[path] = files[path].replace(h.old, h.new, 1)
    return files
