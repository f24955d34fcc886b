"""The audit's document: one self-contained HTML page of a run, for a person to read.

Per experiment: what was attacked, the results table (the summary's rows, the blind baseline's last),
the blind baseline's sentence (a warning, boxed in red, when it tells the two sets of images apart),
PFAMI against the best baseline, then the ROC, the most exposed records and the training curves; at the
end the run's config. The figures are embedded, so the file stands alone; ``snakemake --report``
shows the same body on its first page (workflow/report/workflow.rst).
"""

from __future__ import annotations

import base64
import html
import re
from datetime import date
from pathlib import Path

from pfami.report import BLIND_WARNING, READING_GUIDE, TABLE_HEADER, closing_lines, records_line, table_rows

# (figure name under results/{experiment}/figures/, its heading), in the order shown; PAIRED ones side by side.
FIGURES = (("roc", "ROC of every attack and the blind baseline"),
           ("training_loss", "Training curves"),
           ("exposed_records", "The most exposed records"))
PAIRED = ("roc", "training_loss")
STYLE = """
.pfami-audit { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328;
  line-height: 1.45; max-width: 1280px; margin: 0 auto; padding: 8px 16px 32px; font-size: 15px; }
.pfami-audit h1 { font-size: 26px; font-weight: 700; margin: 8px 0 4px; }
.pfami-audit h2 { font-size: 21px; font-weight: 700; margin: 36px 0 6px; padding-top: 8px;
  border-top: 2px solid #d0d7de; }
.pfami-audit h3 { font-size: 16px; font-weight: 600; margin: 22px 0 6px; }
.pfami-audit p { margin: 6px 0; }
.pfami-audit .meta { color: #57606a; font-size: 13px; }
.pfami-audit .guide { color: #424a53; font-size: 13.5px; }
.pfami-audit table { border-collapse: collapse; margin: 10px 0; font-size: 13.5px; }
.pfami-audit th { background: #f0f2f4; font-weight: 600; text-align: left; }
.pfami-audit th, .pfami-audit td { border: 1px solid #d8dee4; padding: 4px 9px; white-space: nowrap; }
.pfami-audit td { font-variant-numeric: tabular-nums; }
.pfami-audit tr.blind td { background: #f6f8fa; font-style: italic; }
.pfami-audit .warning { background: #fdecea; border-left: 5px solid #c62828; padding: 9px 14px; font-weight: 600; }
.pfami-audit .clear { background: #edf7ee; border-left: 5px solid #2e7d32; padding: 9px 14px; }
.pfami-audit .note { background: #f6f8fa; border-left: 5px solid #8c959f; padding: 9px 14px; }
.pfami-audit figure { margin: 10px 0 18px; }
.pfami-audit figure img { max-width: 100%; border: 1px solid #d8dee4; }
.pfami-audit .pair { display: flex; gap: 18px; flex-wrap: wrap; align-items: flex-start; }
.pfami-audit .pair figure { flex: 1 1 420px; }
.pfami-audit pre { background: #f6f8fa; border: 1px solid #d8dee4; padding: 10px 14px; font-size: 12.5px;
  overflow: auto; max-height: 640px; }
.pfami-audit code { background: #f0f2f4; padding: 0 3px; border-radius: 3px; font-size: 90%; }
.pfami-audit nav a { margin-right: 14px; }
"""


def _inline(text: str) -> str:
    """Escaped text with the summary's `code` spans as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _image(path: Path, alt: str) -> str:
    encoded = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{encoded}" alt="{html.escape(alt)}">'


def _sentence(line: str) -> str:
    kind = "warning" if line.startswith(BLIND_WARNING) else "clear" if line.startswith("The blind baseline") else "note"
    return f'<p class="{kind}">{_inline(line)}</p>'


def audit_body(metrics_by_experiment: dict[str, dict], descriptions: dict[str, str],
               figures_by_experiment: dict[str, dict[str, str]], config_text: str,
               sampling_by_experiment: dict[str, dict] | None = None, made: str | None = None) -> str:
    """The document's body: a <div class="pfami-audit"> with its own style, to stand alone or sit in a page.
    ``figures_by_experiment``: {experiment: {figure name of ``FIGURES``: PNG path}} (missing ones are skipped)."""
    sampling_by_experiment = sampling_by_experiment or {}
    parts = [f"<style>{STYLE}</style>", '<div class="pfami-audit">', "<h1>Membership-inference audit</h1>",
             f'<p class="meta">Made {html.escape(made or date.today().isoformat())} from '
             f'{len(metrics_by_experiment)} experiment(s). The same table is in <code>results/summary.md</code>.</p>',
             "<nav>" + "".join(f'<a href="#{html.escape(name)}">{html.escape(name)}</a>' for name in metrics_by_experiment)
             + '<a href="#config">the run\'s config</a></nav>',
             f'<p class="guide">{_inline(READING_GUIDE)}</p>']
    for experiment, metrics in metrics_by_experiment.items():
        parts += [f'<h2 id="{html.escape(experiment)}">{html.escape(experiment)}</h2>',
                  f"<p>{_inline(descriptions.get(experiment, ''))}</p>", f"<p>{_inline(records_line(metrics))}</p>",
                  "<table><thead><tr>" + "".join(f"<th>{html.escape(title)}</th>" for title in TABLE_HEADER)
                  + "</tr></thead><tbody>"]
        rows = table_rows(metrics)
        for number, row in enumerate(rows):
            blind = ' class="blind"' if number == len(rows) - 1 and metrics.get("blind_baseline") else ""
            parts.append(f"<tr{blind}>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>")
        parts.append("</tbody></table>")
        parts += [_sentence(line) for line in closing_lines(experiment, metrics, sampling_by_experiment)]
        figures = figures_by_experiment.get(experiment, {})
        def shown(name: str, heading: str) -> str:
            return (f"<figure><h3>{html.escape(heading)}</h3>{_image(figures[name], f'{experiment}: {heading}')}"
                    "</figure>")

        side_by_side = [shown(name, heading) for name, heading in FIGURES if name in figures and name in PAIRED]
        if side_by_side:
            parts.append('<div class="pair">' + "".join(side_by_side) + "</div>")
        parts += [shown(name, heading) for name, heading in FIGURES if name in figures and name not in PAIRED]
    parts += ['<h2 id="config">The run\'s config</h2>', f"<pre>{html.escape(config_text)}</pre>", "</div>"]
    return "\n".join(parts) + "\n"


def audit_page(body: str) -> str:
    """``audit_body`` as a complete HTML page."""
    return ('<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Membership-inference audit</title>'
            '<meta name="viewport" content="width=device-width, initial-scale=1"></head><body>\n'
            f"{body}</body></html>\n")
