"""The phone's one-time codes and their key file, the configuration that maps operators to Home Assistant users,
and what the listener needs to run.

The presses themselves are in test_phone_presses.py; against the real Home Assistant in tests/e2e/test_phone.py.
"""

from __future__ import annotations

import re
import secrets
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from argobox.server.config.model import ConfigError, load_config
from argobox.server.mediation.phone import codes
from argobox.server.mediation.phone.listening import listener_refusal
from tests.conftest import WriteConfig
from tests.server.test_phone_presses import PHONE, phone_extra

# The codes and their key file ---------------------------------------------------------------------------------------


def test_a_code_binds_the_request_its_arguments_and_the_decision() -> None:
    key, digest = secrets.token_bytes(32), "d" * 64
    approve = codes.parse_action_key(codes.action_key(key, "req1", digest, "approve"))
    assert approve is not None and approve.decision == "approve" and approve.request_id == "req1"

    assert codes.check_code(key, digest, approve) == "ok"
    assert codes.check_code(key, "e" * 64, approve) == "wrong"  # the arguments changed since it was queued
    assert codes.check_code(secrets.token_bytes(32), digest, approve) == "wrong"  # another ArgoBox's key
    as_deny = codes.ActionKey("deny", approve.request_id, approve.code)
    assert codes.check_code(key, digest, as_deny) == "other_decision"
    other = codes.ActionKey("approve", "req2", approve.code)
    assert codes.check_code(key, digest, other) == "wrong"


@pytest.mark.parametrize(
    "action",
    [
        "ARGOBOX_APPROVE_req1",
        "ARGOBOX_MAYBE_req1_" + "a" * 26,
        "ARGOBOX_APPROVE_req1_" + "a" * 25,
        "ARGOBOX_APPROVE_req1_" + "A" * 26,
        "ARGOBOX_APPROVE__" + "a" * 26,
        "ARGOBOX_APPROVE_r;1_" + "a" * 26,
    ],
)
def test_malformed_action_keys_are_not_parsed(action: str) -> None:
    assert codes.is_ours(action) and codes.parse_action_key(action) is None


def test_the_key_file_is_created_once_private_and_kept(tmp_path: Path) -> None:
    path = codes.key_file(tmp_path / "argobox.db")
    first = codes.load_or_create_key(path)

    assert path.name == "argobox.db.action-key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert codes.load_or_create_key(path) == first and len(first) == 32
    assert [p.name for p in tmp_path.iterdir()] == ["argobox.db.action-key"]  # no temporary file left


def test_processes_creating_the_key_at_once_all_get_the_same_one(tmp_path: Path) -> None:
    path, found, start = tmp_path / "argobox.db.action-key", list[bytes](), threading.Barrier(8)

    def load() -> None:
        start.wait(5)
        found.append(codes.load_or_create_key(path))

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert len(found) == 8 and len(set(found)) == 1


def test_a_symlinked_key_file_is_refused_and_never_followed(tmp_path: Path) -> None:
    planted = tmp_path / "planted"
    planted.write_text("0" * 64 + "\n")
    planted.chmod(0o600)
    linked = tmp_path / "argobox.db.action-key"
    linked.symlink_to(planted)
    dangling = tmp_path / "other.db.action-key"
    dangling.symlink_to(tmp_path / "nowhere")

    with pytest.raises(codes.KeyFileError, match="is a symbolic link"):
        codes.load_or_create_key(linked)
    with pytest.raises(codes.KeyFileError, match="is a symbolic link"):
        codes.load_or_create_key(dangling)
    assert not (tmp_path / "nowhere").exists()


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "argobox.db.action-key"
    codes.load_or_create_key(path)
    path.chmod(0o644)

    with pytest.raises(codes.KeyFileError, match="chmod 600"):
        codes.load_or_create_key(path)


# Configuration ----------------------------------------------------------------------------------------------------


def test_ha_user_ids_are_checked_and_belong_to_one_operator(write_config: WriteConfig) -> None:
    bad = '[[operators]]\nname = "carol"\nha_user_id = "Carol"\n'
    twice = phone_extra() + f'[[operators]]\nname = "dave"\nha_user_id = "{PHONE}"\n'

    with pytest.raises(ConfigError, match=r"operators\[2\]\.ha_user_id: 'Carol' is not a Home Assistant user id"):
        load_config(write_config(extra=bad))
    with pytest.raises(ConfigError, match=f"ha_user_id '{PHONE}' is given to two operators"):
        load_config(write_config(homeassistant='simulated_home = "home.json"', extra=twice))


def test_the_readme_phone_config_loads(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    match = re.search(r"<!-- phone-config-snippet -->\s*```toml\n(.*?)```", readme, re.DOTALL)
    assert match, "the README lost its phone configuration snippet"
    path = tmp_path / "argobox.toml"
    path.write_text(match[1])

    config = load_config(path)

    assert config.notifications.homeassistant is not None and config.notifications.homeassistant.actions is True
    assert [op.ha_user_id for op in config.operators] == ["0f3c9e6b2d4a4b7e9c1d2e3f4a5b6c7d"]


@pytest.mark.parametrize(
    ("home", "actions", "message"),
    [
        ('url = "http://127.0.0.1:1"', False, "needs [notifications.homeassistant] with actions = true"),
        ('simulated_home = "home.json"', True, "needs a real Home Assistant: [homeassistant] url"),
        (
            'url = "http://127.0.0.1:1"\ntoken_env = "ARGOBOX_TEST_NO_SUCH_TOKEN"',
            True,
            "needs the Home Assistant token in the environment variable ARGOBOX_TEST_NO_SUCH_TOKEN",
        ),
    ],
)
def test_the_listener_says_what_it_needs(write_config: WriteConfig, home: str, actions: bool, message: str) -> None:
    config = load_config(write_config(homeassistant=home, extra=phone_extra(actions)))

    assert listener_refusal(config) == f"the phone listener {message}"


def test_argobox_listen_stops_with_the_reason_and_status_2(write_config: WriteConfig) -> None:
    path = write_config(homeassistant='simulated_home = "home.json"', extra=phone_extra())
    argobox = str(Path(sys.executable).with_name("argobox"))

    done = subprocess.run(
        [argobox, "--config", str(path), "listen"], capture_output=True, text=True, timeout=120, check=False
    )

    assert done.returncode == 2
    assert done.stderr == "argobox: the phone listener needs a real Home Assistant: [homeassistant] url\n"
