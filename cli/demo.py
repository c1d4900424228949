"""`make demo`: the whole forensic story on the embedded default, told through the real `ifadit` commands.

A fresh service-mode vault in `demo-out/` (SQLite) behind the vault service on loopback, started in the
background and stopped at the end: its KEK split 2-of-3 among custodians who unseal it, four people with
separate roles who log in, one case key, the public-domain astronaut photo from scikit-image: anonymize
(with and without sealed originals) computed by the service, a restore that waits for a second person's
approval, an exact restore; when the reversible model is shipped, a model restore on the manifest's boxes
and a wrong-key attempt on a copy without manifest; revoke and destroy with the refusals they cause, and
an offline audit verification. Every step is a subprocess running `ifadit`, so what you see is what a lab
would type; no command but the service's own reads the database. Passphrases and shares are demo values
passed through the environment or 0600 files and never printed.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

OUT = Path("demo-out")
DATABASE = OUT / "vault.sqlite3"
START_TIMEOUT_S = 60.0
CASE = "C-17"
REASON = "warrant 2026/114"
PEOPLE = {  # user -> role; each user's demo passphrase is "<name>-demo-passphrase"
    "olga": "operator",
    "ivan": "investigator",
    "alice": "approver",
    "audrey": "auditor",
}


class DemoFailed(SystemExit):
    """A step did not end as the story says it must."""


def passphrase(user: str) -> str:
    return f"{user}-demo-passphrase"


def demo_env(user: str) -> dict[str, str]:
    """The environment of a demo command: the service URL once it runs, the user, token files in demo-out/."""
    return {
        **os.environ,
        "IFADIT_VAULT": os.environ.get("IFADIT_DEMO_VAULT", str(DATABASE)),
        "IFADIT_USER": user,
        "IFADIT_PASSPHRASE": passphrase(user),
        "XDG_DATA_HOME": str((OUT / "home").resolve()),
    }


def ifadit(
    user: str,
    *args: str,
    expect: int = 0,
    note: str = "",
    new_passphrase: str | None = None,
    shown: bool = True,
) -> str:
    """Run one `ifadit` command as `user`, echo it and (when `shown`) its output, and check its exit status."""
    env = demo_env(user)
    if new_passphrase is not None:
        env["IFADIT_NEW_PASSPHRASE"] = new_passphrase
    print(f"\n$ IFADIT_USER={user} ifadit {shlex.join(args)}" + (f"    # {note}" if note else ""), flush=True)
    result = subprocess.run(
        [sys.executable, "-m", "ifadit_cli", *args], env=env, capture_output=True, text=True
    )
    output = (result.stdout + result.stderr).rstrip() if shown else result.stderr.rstrip()
    for line in output.splitlines():
        print(f"  {line}")
    if result.returncode != expect:
        raise DemoFailed(f"demo step failed: expected exit {expect}, got {result.returncode}")
    if expect:
        print(f"  (exit {result.returncode}, as expected)")
    return result.stdout.strip()


def section(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def model_shipped() -> bool:
    """True when the reversible iFADIT backend's weights are shipped (the CLI's default backend needs them)."""
    from ifadit.backends.ifadit import is_shipped

    return is_shipped()


def approved_restore(source: Path, target: Path, case: str, *extra: str, note: str, expect: int = 0) -> None:
    """An investigator's model restore of `source`: filed, approved by a second person, then run."""
    args = ["restore", str(source), "-o", str(target), "--case", case, "--reason", REASON, *extra]
    request = ifadit("ivan", *args, "--request-only", note="filed for an approver")
    ifadit("alice", "approve", request)
    ifadit("ivan", *args, expect=expect, note=note)


def finds_a_face(path: Path) -> bool:
    """Whether the default detector finds a face in `path` (what a restore without manifest relies on)."""
    from ifadit.faces.registry import get_detector
    from ifadit.media.image import read_image

    return bool(get_detector("hog").detect(read_image(path)))


def model_restores() -> None:
    """3b: the reversible model run backwards, with the right key and with a wrong one."""
    from ifadit.media.image import read_image, write_image

    section("3b. Model restore from pixels, and a wrong key")
    surrogate = OUT / "released/surrogate.png"
    approved_restore(
        surrogate,
        OUT / "restored/surrogate.png",
        CASE,
        note="the manifest's boxes and key: no face detection needed",
    )
    copy = OUT / "released/surrogate-copy.png"
    write_image(copy, read_image(surrogate))  # pixels only: a re-encoded copy that lost its manifest
    print(f"\n  {copy} is a copy without manifest (pixels only), as a re-encoding website would leave it.")
    other = ifadit("admin", "keys", "issue", "--case", "C-99", "--purpose", "another case")
    wrong = OUT / "restored/wrong-key.png"
    if finds_a_face(copy):
        note = "a wrong key is no error: it yields another plausible face"
        approved_restore(copy, wrong, "C-99", "--key", other, note=note)
    else:
        print(
            "  The detector finds no face in the surrogate (a barely trained model's surrogates are not yet\n"
            "  faces), so a restore without manifest has nothing to restore; it must fail cleanly:"
        )
        approved_restore(copy, wrong, "C-99", "--key", other, expect=1, note="no face: nothing restored")


def side_by_side(paths: list[Path], target: Path) -> None:
    from ifadit.media.image import read_image, write_image

    images = [read_image(p) for p in paths]
    height = max(i.shape[0] for i in images)
    padded = [np.pad(i, ((0, height - i.shape[0]), (0, 8), (0, 0)), constant_values=255) for i in images]
    write_image(target, np.concatenate(padded, axis=1))


def anonymize(user: str, photo: Path, name: str, *extra: str, expect: int = 0, note: str) -> None:
    """`ifadit anonymize` of `photo` as `user` into released/`name` under the case key."""
    output = str(OUT / f"released/{name}")
    ifadit(user, "anonymize", str(photo), "-o", output, "--case", CASE, *extra, expect=expect, note=note)


def restore_args(name: str, *extra: str) -> list[str]:
    """`ifadit restore` of released/`name` into restored/`name` for the case, with the warrant as reason."""
    source, target = str(OUT / f"released/{name}"), str(OUT / f"restored/{name}")
    return ["restore", source, "-o", target, "--case", CASE, "--reason", REASON, *extra]


def fresh_output() -> Path:
    """An empty demo-out/ with released/ and restored/, and the astronaut photo in it."""
    from skimage import data

    from ifadit.media.image import write_image

    if OUT.exists():
        shutil.rmtree(OUT)
    (OUT / "released").mkdir(parents=True)
    (OUT / "restored").mkdir()
    photo = OUT / "astronaut.png"
    write_image(photo, data.astronaut())
    return photo


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def vault_service() -> Iterator[str]:
    """`ifadit vault serve` on a free loopback port in the background until the block ends; its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = ["vault", "serve", "--database", str(DATABASE), "--port", str(port)]
    print(f"\n$ ifadit {shlex.join(command)} &    # the only process that reads the database", flush=True)
    log = (OUT / "service.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "ifadit_cli", *command], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not listening(port):
            if server.poll() is not None or time.monotonic() > deadline:
                raise DemoFailed(f"the vault service did not start: see {OUT / 'service.log'}")
            time.sleep(0.2)
        os.environ["IFADIT_DEMO_VAULT"] = url
        yield url
    finally:
        os.environ.pop("IFADIT_DEMO_VAULT", None)
        server.terminate()  # Ctrl-C's signal: the service seals (forgets the KEK) and stops
        server.wait(timeout=30)
        log.close()
        print(f"\n  The vault service stopped and forgot its KEK (log: {OUT / 'service.log'}).")


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def init_section() -> list[Path]:
    """0: a service-mode vault; the 2-of-3 unseal shares, one file per custodian (returned)."""
    section("0. The vault: its KEK split among three custodians, any two of whom unseal the service")
    printed = ifadit(
        "admin", "vault", "init", "--service", "--shares", "3", "--threshold", "2", "--admin", "admin",
        shown=False, note="prints the 3 shares once; here each goes to its custodian's file",
    )  # fmt: skip
    shares = [line.split(": ", 1)[1] for line in printed.splitlines() if line.startswith("share ")]
    if len(shares) != 3:
        raise DemoFailed("vault init --service did not print 3 shares")
    files = []
    for number, share in enumerate(shares, start=1):
        path = OUT / "custodians" / f"share-{number}"
        path.parent.mkdir(mode=0o700, exist_ok=True)
        path.write_text(share + "\n")
        path.chmod(0o600)
        files.append(path)
    print(f"  3 shares written to {OUT / 'custodians'}/share-1..3 (in a lab: one per person, never together)")
    return files


def unseal_section(shares: list[Path]) -> None:
    """The service starts sealed; two custodians unseal it; everyone logs in."""
    ifadit("admin", "vault", "status", note="sealed: it holds no KEK and refuses every request")
    ifadit("admin", "login", expect=1, note="refused while sealed, even with the right passphrase")
    for share in shares[:2]:
        ifadit("admin", "vault", "operator", "unseal", "--share-file", str(share), note="a custodian's share")
    ifadit("admin", "login", note="a short-lived token (file 0600) instead of database access")


def vault_section() -> str:
    """1: four people with separate roles, who log in, and the case key (returned)."""
    section("1. Four people with separated roles, and one key for the case")
    for user, role in PEOPLE.items():
        ifadit("admin", "users", "add", user, "--role", role, new_passphrase=passphrase(user))
        ifadit(user, "login")
    key = ifadit("admin", "keys", "issue", "--case", CASE, "--purpose", "CCTV release to the press")
    ifadit("admin", "keys", "list")
    return key


def anonymize_section(photo: Path, reversible: bool) -> None:
    """2: a surrogate (when the model is shipped), the baselines, a sealed original, a refused operator."""
    section("2. Anonymize (operator): the service computes with the case key, which never leaves it")
    if reversible:
        note = "a natural surrogate face under the case key"
        anonymize("olga", photo, "surrogate.png", "--backend", "ifadit", note=note)
    else:
        print(
            "\n  The reversible iFADIT model is missing (`ifadit models list`; reinstall or set IFADIT_PRETRAINED):"
        )
        print("  this demo uses the baselines, and --seal-original for a bit-exact, authorized restore.")
    anonymize("olga", photo, "blurred.png", "--backend", "blur", note="non-reversible baseline")
    note = "original face sealed under the case key"
    anonymize("olga", photo, "sealed.png", "--backend", "pixelate", "--seal-original", note=note)
    anonymize("ivan", photo, "x.png", expect=1, note="an investigator may not anonymize")


def restore_section(reversible: bool) -> list[str]:
    """3: restores refused, awaiting approval, approved and exact, single-use; the exact restore's arguments."""
    section("3. Restore: request, a second person's approval, exact restore")
    restore = restore_args("sealed.png", "--exact")
    note = "a blurred face without sealed original is gone"
    ifadit("ivan", *restore_args("blurred.png"), expect=1, note=note)
    ifadit("ivan", *restore, expect=3, note="policy: an approver must agree first")
    pending = json.loads(ifadit("alice", "requests", "list", "--state", "pending", "--json"))
    request = pending[0]["handle"]
    ifadit("ivan", "approve", request, expect=1, note="nobody approves their own request")
    ifadit("alice", "approve", request)
    ifadit("ivan", *restore, note="bit-exact original face, checked against its keyed commitment")
    ifadit("ivan", *restore, "--force", expect=3, note="an approval is single-use")
    if reversible:
        model_restores()
    return restore


def revoke_section(key: str, restore: list[str]) -> None:
    """4: revoke, then destroy the case key; the exact restore is refused each time."""
    section("4. Revoke, then destroy: restores are refused, naming the key's state")
    ifadit("admin", "keys", "revoke", key, "--reason", "case closed", "--yes")
    ifadit("ivan", *restore, "--force", expect=1, note="revoked keys restore nothing")
    ifadit("admin", "keys", "destroy", key, "--reason", "retention period over", "--yes")
    ifadit(
        "ivan",
        *restore,
        "--force",
        expect=1,
        note="pending-destroy: its material is erased after the 7-day window, then the anonymization is permanent",
    )


def audit_section() -> Path:
    """5: the auditor's export and offline verification; the bundle's path."""
    section("5. The auditor exports the log and verifies it offline with only the public key")
    bundle, public = OUT / "case.audit.jsonl", OUT / "vault.pub"
    ifadit("audrey", "audit", "export", "-o", str(bundle), "--public-key-out", str(public))
    ifadit("audrey", "audit", "show", "--case", CASE)
    ifadit("audrey", "audit", "verify", str(bundle), "--public-key", str(public))
    return bundle


def summary(photo: Path, reversible: bool, bundle: Path) -> None:
    """The side-by-side picture of the outputs, and where everything is."""
    picture = OUT / "side-by-side.png"
    panels = {
        "original": photo,
        "blurred": OUT / "released/blurred.png",
        "pixelated (sealed)": OUT / "released/sealed.png",
        "exact restore": OUT / "restored/sealed.png",
    }
    if reversible:
        panels["surrogate"] = OUT / "released/surrogate.png"
        panels["model restore"] = OUT / "restored/surrogate.png"
    side_by_side(list(panels.values()), picture)
    section("Done")
    print(f"  {' | '.join(panels)}: {picture}")
    print(f"  outputs in {OUT}/released, restores in {OUT}/restored, audit bundle {bundle}")


def main() -> None:
    photo = fresh_output()
    reversible = model_shipped()
    shares = init_section()
    with vault_service():
        unseal_section(shares)
        key = vault_section()
        anonymize_section(photo, reversible)
        restore = restore_section(reversible)
        revoke_section(key, restore)
        bundle = audit_section()
    summary(photo, reversible, bundle)


if __name__ == "__main__":
    main()
