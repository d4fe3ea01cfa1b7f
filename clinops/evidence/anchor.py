"""The head of each log, published outside the log on every append: what a truncation cannot undo.

A log alone cannot show that its last entries were removed, or that the last entry was replaced: a shorter
log is still a valid chain. So every `append` also writes the new head - `SEQ:HASH:MAC` - to a second store,
and `verify` compares the log against it without anyone having to keep an anchor by hand.

Where the head lives, and why there:
* AWS: one SSM parameter per stack, `/clinops/<stack>/evidence/head` (`SsmHeadStore`). A different service
  from the log's S3 bucket, with its own IAM actions (`ssm:PutParameter` is granted to the writers only), its
  own version history (`GetParameterHistory`) and CloudTrail *management* events that every trail records by
  default. Another object in the evidence bucket would share the bucket's blast radius, and updating it is an
  overwrite, which the bucket policy forbids on purpose.
* Offline: a file beside the log directory, `<dir>.head` (`FileHeadStore`), replaced atomically.

The head carries its own MAC (`anchor:<stack>:<seq>:<hash>` under the log's key), so someone who can write
the parameter but not use the key cannot publish a head of their choosing. Writers never move the head
backwards: a writer that lost a race to a newer head leaves it alone. A head that lags the log (a writer
crashed between the entry and the head) is not a problem: verify only requires the log to *contain* it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from clinops.evidence.entry import Anchor
from clinops.evidence.errors import EvidenceUnavailable
from clinops.evidence.mac import MacKey, anchor_message


def head_parameter_name(stack: str) -> str:
    """The SSM parameter holding a stack's published evidence head (one source for code and IAM)."""
    return f"/clinops/{stack}/evidence/head"


@dataclass(frozen=True)
class PublishedHead:
    anchor: Anchor
    mac: str

    @classmethod
    def sign(cls, key: MacKey, stack: str, seq: int, entry_hash: str) -> PublishedHead:
        mac = base64.b64encode(key.generate(anchor_message(stack, seq, entry_hash))).decode("ascii")
        return cls(Anchor(seq=seq, hash=entry_hash), mac)

    @classmethod
    def parse(cls, text: str) -> PublishedHead:
        seq, digest, mac = text.strip().split(":")
        return cls(Anchor(seq=int(seq), hash=digest), mac)

    def text(self) -> str:
        return f"{self.anchor.seq}:{self.anchor.hash}:{self.mac}"

    def valid(self, key: MacKey, stack: str) -> bool:
        try:
            mac = base64.b64decode(self.mac, validate=True)
        except (binascii.Error, ValueError):
            return False
        if base64.b64encode(mac).decode("ascii") != self.mac:
            return False  # base64 padding bits are free: only the canonical spelling is accepted, byte for byte
        return key.verify(anchor_message(stack, self.anchor.seq or 0, self.anchor.hash), mac)


class HeadStore(Protocol):
    def read(self) -> str | None:
        """The published head text, or None when nothing was ever published."""
        ...

    def write(self, text: str) -> None: ...

    def describe(self) -> str: ...


class FileHeadStore:
    """Offline: the head in a file outside the log directory, replaced atomically (rename)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def describe(self) -> str:
        return str(self.path)

    def read(self) -> str | None:
        try:
            return self.path.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise EvidenceUnavailable(f"{self.path}: cannot read the published evidence head ({exc})") from exc

    def write(self, text: str) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            with os.fdopen(fd, "w") as handle:
                handle.write(text + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError, UnboundLocalError):
                os.unlink(temp)
            raise EvidenceUnavailable(f"{self.path}: cannot publish the evidence head ({exc})") from exc


class SsmHeadStore:
    """AWS: the head in an SSM parameter (String; it holds no secret) - see the module note for why."""

    def __init__(self, name: str, client: Any = None) -> None:
        import boto3

        self.name = name
        self.client = client if client is not None else boto3.client("ssm")

    def describe(self) -> str:
        return f"ssm:{self.name}"

    def read(self) -> str | None:
        try:
            return str(self.client.get_parameter(Name=self.name)["Parameter"]["Value"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
                return None
            raise EvidenceUnavailable(f"SSM GetParameter {self.name} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise EvidenceUnavailable(f"SSM GetParameter {self.name} failed: {exc}") from exc

    def write(self, text: str) -> None:
        try:
            self.client.put_parameter(Name=self.name, Value=text, Type="String", Overwrite=True)
        except (ClientError, BotoCoreError) as exc:
            raise EvidenceUnavailable(f"SSM PutParameter {self.name} failed: {exc}") from exc
