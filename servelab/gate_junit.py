"""The gate's JUnit XML report: one test suite, one test case per metric.

A regressed metric is a <failure>, an inconclusive one an <error> (CI shows it apart from a
regression), no change and improved pass; every case's <system-out> carries its numbers.
Built with xml.etree, so text is escaped and the document is always well-formed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from servelab.gate_format import floors, interval, num, pct, pvalue


def _numbers(m: dict) -> str:
    return (f"baseline median {num(m.get('baseline_median'), m['unit'])}, candidate median "
            f"{num(m.get('candidate_median'), m['unit'])}, change {pct(m.get('rel_change'))} "
            f"(interval {interval(m)}), p={pvalue(m)}, floors {floors(m)}; "
            f"{len(m['baseline'])} baseline and {len(m['candidate'])} candidate repeats")


def render_junit(result: dict) -> str:
    metrics = result["metrics"]
    count = {v: sum(m["verdict"] == v for m in metrics) for v in ("regressed", "inconclusive")}
    suite = ET.Element("testsuite", name="servelab gate", tests=str(len(metrics)),
                       failures=str(count["regressed"]), errors=str(count["inconclusive"]), skipped="0")
    for m in metrics:
        case = ET.SubElement(suite, "testcase", classname="servelab.gate", name=m["name"])
        text = f"{m['verdict']}: {m['reason']}. {_numbers(m)}"
        if m["verdict"] == "regressed":
            ET.SubElement(case, "failure", message=f"{m['name']} regressed {pct(m.get('rel_change'))}",
                          type="regression").text = text
        elif m["verdict"] == "inconclusive":
            ET.SubElement(case, "error", message=f"{m['name']} inconclusive: {m['reason']}",
                          type="inconclusive").text = text
        else:
            ET.SubElement(case, "system-out").text = text
    for r in result.get("reasons") or []:
        ET.SubElement(suite, "system-err").text = r
    root = ET.Element("testsuites", name="servelab gate", tests=suite.get("tests", "0"),
                      failures=suite.get("failures", "0"), errors=suite.get("errors", "0"))
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
