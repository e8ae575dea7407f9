"""Requirements, results and the conformance report: catalog (levels, requirements), result.json (model,
schema), report.html (render), run comparison (diff) and waivers. Never imports pytest."""
