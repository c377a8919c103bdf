"""The app's rules that need no browser: who may be served, and where each user's files go."""

from __future__ import annotations

import pytest


def test_auth_rules_and_user_workspaces(tmp_path):
    """Without a browser: who may be served, and where each user's files go."""
    from types import SimpleNamespace

    from workbench.app import is_loopback, parse_auth
    from workbench.app.common import user_settings
    from workbench.config import Settings
    from workbench.errors import ConfigError

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert parse_auth(None, "127.0.0.1", share=False) is None
    assert parse_auth("ana:secret", "0.0.0.0", share=True) == [("ana", "secret")]
    for auth, host, share in ((None, "0.0.0.0", False), (None, "127.0.0.1", True), ("nopassword", "0.0.0.0", False)):
        with pytest.raises(ConfigError):
            parse_auth(auth, host, share)
    base = Settings(home=tmp_path)
    users = (tmp_path / "users").resolve()
    assert user_settings(base, SimpleNamespace(username="ana")).home == users / "ana"
    escaped = user_settings(base, SimpleNamespace(username="../../etc")).home
    assert escaped.parent == users and escaped.name.startswith("etc-")
    assert user_settings(base, SimpleNamespace(username="..")).home.parent == users  # not the home root
    b_space, b_under = (user_settings(base, SimpleNamespace(username=n)).home for n in ("b ob", "b_ob"))
    assert b_space != b_under  # two users never share a folder
    assert user_settings(base, None).home == users / "local"
    assert user_settings(base, SimpleNamespace(username="bo")).models == (tmp_path / "models").resolve()  # shared


def test_several_accounts_each_kept_and_none_merged(tmp_path):
    from workbench.app import parse_auth
    from workbench.errors import ConfigError

    accounts = tmp_path / "accounts.txt"
    accounts.write_text("# product staff\ncara:pa:ss\n\n  dev : s3cret\n")
    with pytest.raises(ConfigError, match="chmod 600"):  # passwords other users could read
        parse_auth(None, "0.0.0.0", False, accounts)
    accounts.chmod(0o600)
    assert parse_auth(["ana:one", "bea:two"], "0.0.0.0", False, accounts) == [
        ("ana", "one"), ("bea", "two"), ("cara", "pa:ss"), ("dev", " s3cret")]
    with pytest.raises(ConfigError, match="'ana' is given more than once"):
        parse_auth(["ana:one", "ana:two"], "0.0.0.0", False)
    from workbench.names import folder_name

    with pytest.raises(ConfigError, match="would share a workspace"):  # a name spelled like another's folder
        parse_auth(["b ob:one", f"{folder_name('b ob')}:two"], "0.0.0.0", False)
    accounts.write_text("ana:one\nnopassword\n")
    with pytest.raises(ConfigError, match=r"accounts.txt:2: an account is USER:PASS"):
        parse_auth(None, "0.0.0.0", False, accounts)


def test_names_are_never_paths(tmp_path):
    from workbench.errors import ConfigError
    from workbench.names import check_name, inside

    assert check_name("me-2", "likeness name") == "me-2"
    for bad in ("../../bob/likenesses/pwned", "/etc", "..", "a/b", "", ".hidden", "x" * 65):
        with pytest.raises(ConfigError, match="not a valid name"):
            check_name(bad, "likeness name")
    with pytest.raises(ConfigError, match="outside"):
        inside(tmp_path / "alice", tmp_path / "alice" / ".." / "bob")
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "link").symlink_to(tmp_path)
    with pytest.raises(ConfigError, match="outside"):
        inside(tmp_path / "alice", tmp_path / "alice" / "link" / "bob")


def test_unauthenticated_visitors_see_no_server_paths_or_schemas(tmp_path):
    import re
    import socket
    import urllib.error
    import urllib.request

    from workbench.app import build_app
    from workbench.config import Settings

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    from workbench.app import serve

    app = build_app(Settings(home=tmp_path, device="cpu", offline=True))
    serve(app, server_name="127.0.0.1", server_port=port, auth=[("ana", "secret")], prevent_thread_lock=True,
          quiet=True)
    try:
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read().decode()
        assert not re.search(r"(/work|/tmp|/root|/home)/[\w.-]+/", page), "server paths in the login page"
        assert "evaluation/suites" not in page and "parameter_default" not in page
        for path in ("/config", "/gradio_api/info"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10)
            assert refused.value.code == 401
    finally:
        app.close()


def test_uploads_belong_to_the_person_who_sent_them(tmp_path):
    """Through Gradio's real routes: each upload is recorded with its sender, and the Selfies tab's planner
    takes only the asking person's uploads (another's path, or a result file in the same folder, is refused)."""
    import os
    import socket
    from pathlib import Path

    import httpx

    from workbench.app import build_app, serve
    from workbench.app.selfies_tab import plan_set
    from workbench.app.uploads import LEDGER
    from workbench.config import Settings

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = build_app(Settings(home=tmp_path, device="cpu", offline=True))
    serve(app, server_name="127.0.0.1", server_port=port, auth=[("ana", "one"), ("bea", "two")],
          prevent_thread_lock=True, quiet=True)
    base = f"http://127.0.0.1:{port}"
    photo = next((Path(__file__).parent.parent / "datasets" / "sample-selfies" / "aws_rek_subject1").glob("*.jpg"))
    try:
        uploaded = {}
        for user, password in (("ana", "one"), ("bea", "two")):
            with httpx.Client(base_url=base, timeout=30) as client:
                assert client.post("/login", data={"username": user, "password": password}).status_code == 200
                answer = client.post("/gradio_api/upload", files={"files": (f"{user}.jpg", photo.read_bytes())})
                assert answer.status_code == 200, answer.text
                uploaded[user] = answer.json()[0]
        theirs = tmp_path / "users" / "ana" / "selfie-sets" / "current" / "01.jpg"  # a file of ana's workspace
        theirs.parent.mkdir(parents=True)
        theirs.write_bytes(photo.read_bytes())
        with httpx.Client(base_url=base, timeout=30) as bea:  # another person cannot read it by its path
            bea.post("/login", data={"username": "bea", "password": "two"})
            assert bea.get(f"/gradio_api/file={theirs}").status_code == 403
        with httpx.Client(base_url=base, timeout=30) as stranger:  # not signed in: no upload, nothing recorded
            assert stranger.post("/gradio_api/upload", files={"files": ("x.jpg", b"x")}).status_code == 401
        assert LEDGER.owner(uploaded["ana"]) == "ana" and LEDGER.owner(uploaded["bea"]) == "bea"
        # ana replays the page's own request to "Check photos", naming bea's upload: refused, nothing copied
        check = next(key for key, fn in app.fns.items() if getattr(fn, "name", "") == "check")
        with httpx.Client(base_url=base, timeout=60) as ana:
            ana.post("/login", data={"username": "ana", "password": "one"})
            forged = {"path": uploaded["bea"], "orig_name": "bea.jpg", "meta": {"_type": "gradio.FileData"}}
            assert ana.post("/gradio_api/queue/join", json={"data": [[forged], None, None], "fn_index": check,
                                                            "session_hash": "forged"}).status_code == 200
            with ana.stream("GET", "/gradio_api/queue/data", params={"session_hash": "forged"}) as events:
                said = []
                for line in events.iter_lines():
                    said.append(line)
                    if "process_completed" in line:
                        break
        refusal = next(line for line in said if '"msg":"log"' in line)  # the popup; the page's outputs unchanged
        assert "bea.jpg: not a file you uploaded here" in refusal and '"level":"warning"' in refusal
        assert '"output":{"data":[{"__type__":"update"}' in said[-1]
        assert os.path.exists(uploaded["bea"]) and list(theirs.parent.iterdir()) == [theirs]  # ana's set as it was
        folder = tmp_path / "set"
        kept, new, refused, spent = plan_set([uploaded["ana"], uploaded["bea"]], {}, folder, "ana", 25 * 2**20)
        assert new == [uploaded["ana"]] and not kept and not spent
        assert refused == ["bea.jpg: not a file you uploaded here; upload it again"]
        _, new, refused, spent = plan_set([uploaded["ana"]], {}, folder, "ana", 2**20 // 100)  # refused alone
        assert not new and spent == [uploaded["ana"]] and "larger than the 10 KB a photo may be" in refused[0]
        LEDGER.release("ana", [uploaded["ana"], uploaded["bea"]])  # deletes only what ana uploaded
        assert not os.path.exists(uploaded["ana"]) and os.path.exists(uploaded["bea"])
    finally:
        app.close()


def test_every_metric_reads_in_plain_words_and_tables_show_no_codes():
    import pandas as pd

    from workbench import METRICS
    from workbench.app.words import checks_table, not_measured, results_table

    for metric in METRICS.values():
        assert metric.title and metric.plain and metric.scale, metric.name
        assert "_" not in metric.title + metric.plain, metric.name
    summary = pd.DataFrame([
        {"sampler": "euler", "steps": 20, "metric": "test_facesim", "n": 12, "mean": 0.4123, "ci_low": 0.35,
         "ci_high": 0.47, "ci_note": ""},
        {"sampler": "euler", "steps": 20, "metric": "face_detected", "n": 3, "mean": 1.0, "ci_low": float("nan"),
         "ci_high": float("nan"), "ci_note": "n < 5"},
        {"sampler": "euler", "steps": 20, "metric": "kid_clip_std", "n": 1, "mean": 0.1, "ci_low": float("nan"),
         "ci_high": float("nan"), "ci_note": "n < 5"},
        {"sampler": "euler", "steps": 20, "metric": "clip_iqa_noisiness", "n": 0, "mean": float("nan"),
         "ci_low": float("nan"), "ci_high": float("nan"), "ci_note": "no values"}])
    table = results_table(summary, threshold=0.3)
    text = table.to_string()
    assert not [m for m in METRICS if m in text] and "n <" not in text
    assert table["What"].tolist() == ["Looks like the person", "Face found"]
    assert table.iloc[0]["Average"] == "0.41" and table.iloc[0]["95% range"] == "0.35 to 0.47"
    assert "0.30 or more: likely the same person" in table.iloc[0]["How to read it"]
    assert table.iloc[1]["95% range"] == "too few images for a range (5 or more)"
    assert not_measured(summary) == ["Looks clean"]
    checks = checks_table([{"metric": "exposure", "vs_baseline": True, "min": -0.3, "max": 0.3, "value": 0.01,
                            "passed": True, "why": "a LoRA shifts brightness a little"}])
    assert checks.iloc[0].tolist() == ["Brightness, change from the base model", "0.01", "-0.30 to 0.30", "passed",
                                       "a LoRA shifts brightness a little"]
