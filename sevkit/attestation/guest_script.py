#!/usr/bin/env python3
"""Runs INSIDE an SNP guest (python3, stdlib only): get one attestation report for a nonce.

Sent by sevkit.attestation.guestfetch through a Shell and run as root. Tries configfs-tsm
(kernel >= 6.7, sev-facts §4.3), then the /dev/sev-guest ioctls (§5.2): SNP_GET_EXT_REPORT for
the certificates, SNP_GET_REPORT if the extended request fails. Prints one line
``SEVKIT-ATTEST <base64 of JSON>`` with the report and certificate table (base64) and how they
were obtained; on failure the JSON has ``error`` and the exit status is 3.

This file is also importable on the host (tests read it as text); keep it free of sevkit imports.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import fcntl
import json
import os
import struct
import subprocess
import sys
from typing import Any

SNP_GET_REPORT = 0xC0205300
SNP_GET_EXT_REPORT = 0xC0205302
VMM_ERR_INVALID_LEN = 1
PAGE = 4096
DEFAULT_TSM_ROOT = "/sys/kernel/config/tsm/report"
CONFIGFS = "/sys/kernel/config"


class GuestRequest(ctypes.Structure):
    _fields_ = [("msg_version", ctypes.c_uint8), ("req_data", ctypes.c_uint64),
                ("resp_data", ctypes.c_uint64), ("exitinfo2", ctypes.c_uint64)]


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)


def via_configfs(root: str, entry: str, nonce: bytes, vmpl: int) -> dict[str, Any]:
    d = os.path.join(root, entry)
    # A leftover of ours (random name) is reused; the generation counter guards it.
    with contextlib.suppress(FileExistsError):
        os.mkdir(d)
    info: dict[str, Any] = {"method": "configfs-tsm", "entry": d}
    try:
        info["provider"] = _read(os.path.join(d, "provider")).decode().strip()
        if os.path.exists(os.path.join(d, "privlevel")):
            _write(os.path.join(d, "privlevel"), str(vmpl).encode())
        _write(os.path.join(d, "inblob"), nonce)
        gen_before = _read(os.path.join(d, "generation")).decode().strip()
        report = _read(os.path.join(d, "outblob"))
        certs = b""
        try:
            certs = _read(os.path.join(d, "auxblob"))
        except OSError as exc:      # absent or ENXIO: the host supplied no certificates
            info["auxblob_error"] = str(exc)
        gen_after = _read(os.path.join(d, "generation")).decode().strip()
        info.update(generation_before=gen_before, generation_after=gen_after)
        if gen_before != gen_after:
            raise RuntimeError(f"configfs-tsm generation changed {gen_before} -> {gen_after}: concurrent writer")
    finally:
        try:
            os.rmdir(d)
        except OSError as exc:
            info["cleanup_error"] = str(exc)
    info["report"], info["certs"] = report, certs
    return info


def _ioctl(dev: str, code: int, req_buf: Any, resp_buf: Any) -> tuple[int, int]:
    io = GuestRequest(1, ctypes.addressof(req_buf), ctypes.addressof(resp_buf), 0)
    fd = os.open(dev, os.O_RDWR)
    try:
        fcntl.ioctl(fd, code, io)
        return 0, int(io.exitinfo2)
    except OSError as exc:
        return exc.errno or -1, int(io.exitinfo2)
    finally:
        os.close(fd)


def _report_from_resp(raw: bytes) -> bytes:
    status, size = struct.unpack_from("<II", raw, 0)
    if status != 0:
        raise RuntimeError(f"MSG_REPORT_RSP status {status:#x}")
    return raw[0x20:0x20 + size]


def via_ioctl(dev: str, nonce: bytes, vmpl: int) -> dict[str, Any]:
    base = nonce.ljust(64, b"\0") + struct.pack("<I", vmpl) + b"\0" * 28
    resp = ctypes.create_string_buffer(4000)
    certs_len = 4 * PAGE
    for _ in range(2):
        certs = ctypes.create_string_buffer(certs_len)
        req = ctypes.create_string_buffer(base + struct.pack("<QI", ctypes.addressof(certs), certs_len)
                                          + b"\0" * 4, 112)
        err, exitinfo2 = _ioctl(dev, SNP_GET_EXT_REPORT, req, resp)
        if err == 0:
            n = int(struct.unpack_from("<I", req.raw, 104)[0]) or certs_len
            return {"method": "ioctl SNP_GET_EXT_REPORT", "report": _report_from_resp(resp.raw),
                    "certs": certs.raw[:n]}
        if (exitinfo2 >> 32) == VMM_ERR_INVALID_LEN:
            certs_len = int(struct.unpack_from("<I", req.raw, 104)[0])
            continue
        break
    ext_error = f"SNP_GET_EXT_REPORT errno {err}, exitinfo2 {exitinfo2:#x}"
    req = ctypes.create_string_buffer(base, 96)
    err, exitinfo2 = _ioctl(dev, SNP_GET_REPORT, req, resp)
    if err != 0:
        raise RuntimeError(f"{ext_error}; SNP_GET_REPORT errno {err}, fw_error {exitinfo2 & 0xffffffff:#x}, "
                           f"vmm_error {exitinfo2 >> 32:#x}")
    return {"method": "ioctl SNP_GET_REPORT", "ext_error": ext_error, "report": _report_from_resp(resp.raw),
            "certs": b""}


def _try(cmd: list[str]) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{' '.join(cmd)}: {exc}"
    return f"{' '.join(cmd)}: exit {r.returncode} {r.stderr.strip()}".strip()


def prepare() -> list[str]:
    """Load sev-guest and mount configfs if needed (sev-facts §4.3); failures are only noted."""
    done = []
    if not os.path.exists("/dev/sev-guest") or not os.path.isdir(DEFAULT_TSM_ROOT):
        done.append(_try(["modprobe", "sev-guest"]))
    if os.path.isdir(CONFIGFS) and not os.path.ismount(CONFIGFS):
        done.append(_try(["mount", "-t", "configfs", "none", CONFIGFS]))
    return done


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nonce", required=True, help="hex, up to 64 bytes")
    ap.add_argument("--vmpl", type=int, default=0)
    ap.add_argument("--tsm-root", default=DEFAULT_TSM_ROOT)
    ap.add_argument("--entry", default="sevkit")
    ap.add_argument("--device", default="/dev/sev-guest")
    ap.add_argument("--method", choices=("auto", "configfs", "ioctl"), default="auto")
    a = ap.parse_args(argv)
    nonce = bytes.fromhex(a.nonce)
    out: dict[str, Any] = {"tried": []}
    try:
        if len(nonce) > 64:
            raise ValueError("nonce longer than 64 bytes")
        if a.tsm_root == DEFAULT_TSM_ROOT:
            out["prepared"] = prepare()
        info: dict[str, Any] | None = None
        if a.method in ("auto", "configfs"):
            if os.path.isdir(a.tsm_root):
                info = via_configfs(a.tsm_root, a.entry, nonce, a.vmpl)
            else:
                out["tried"].append(f"{a.tsm_root}: not present")
        if info is None and a.method in ("auto", "ioctl"):
            if os.path.exists(a.device):
                info = via_ioctl(a.device, nonce, a.vmpl)
            else:
                out["tried"].append(f"{a.device}: not present")
        if info is None:
            raise RuntimeError("no SNP report interface: " + "; ".join(out["tried"]))
        out.update({k: v for k, v in info.items() if k not in ("report", "certs")})
        out["report_b64"] = base64.b64encode(info["report"]).decode()
        out["certs_b64"] = base64.b64encode(info["certs"]).decode()
        status = 0
    except Exception as exc:       # reported to the host as data, not a traceback on a console
        out["error"] = f"{type(exc).__name__}: {exc}"
        status = 3
    print("SEVKIT-ATTEST " + base64.b64encode(json.dumps(out).encode()).decode())
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
