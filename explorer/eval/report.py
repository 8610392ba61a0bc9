"""The benchmark report's command: lmms-eval runs of the `pruning_explorer` model -> the report's table, its JSON
and its figures (the numbers: explorer/analysis/report.py; the figures: explorer/page/reports.py, the page's).

    python -m explorer.eval.report RUN_DIR [RUN_DIR ...] [--json report.json] [--html report.html]
"""

import argparse
import json
import sys

from explorer.analysis.report import load_report, markdown
from explorer.page.reports import report_figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="lmms-eval output folders (--output_path) or results files")
    parser.add_argument("--json", help="write the whole report as JSON here")
    parser.add_argument("--html", help="write every figure into one HTML file here")
    args = parser.parse_args(argv)
    try:
        report = load_report(args.runs)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(markdown(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f)
    if args.html:  # plotly.js embedded once (works offline), then every figure
        with open(args.html, "w") as f:
            f.write("<html><head><meta charset='utf-8'><title>benchmark report</title></head><body>\n")
            for i, figure in enumerate(report_figures(report).values()):
                f.write(figure.to_html(full_html=False, include_plotlyjs=i == 0) + "\n")
            f.write("</body></html>\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
