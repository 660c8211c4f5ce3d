"""Post-hoc analysis of trained FER models: metrics, explanations, sweep plots, one HTML report.

Compute modules (metrics, saliency, filters, explain, sweep) return arrays and tables;
`plots` draws them; `report` writes the folder.
"""
