"""The fleet's report.html: one self-contained page (Jinja2, autoescaped) from result.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

IDENTITY_COLUMNS = ("cpu", "generation", "microcode", "firmware", "kernel", "qemu")


def write_page(folder: Path, result: dict[str, Any]) -> Path:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("sevkit.fleet", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.StrictUndefined)
    hosts = result["hosts"]
    for h in hosts:   # each host's own page, when its run wrote one
        h["page"] = next((f"{h['report_dir']}/{n}" for n in ("report.html", "junit.xml")
                          if h.get("report_dir") and (folder / h["report_dir"] / n).is_file()), None)
    html = env.get_template("fleet.html.j2").render(r=result, hosts=hosts, columns=IDENTITY_COLUMNS,
                                                    places=[h["place"] for h in hosts])
    path = folder / "report.html"
    path.write_text(html)
    return path
