"""Lints and renders the Helm chart through helm-python-sdk (Helm's Go SDK, no helm binary), and
checks manifests against the CRD's openAPIV3Schema. Prints one JSON document for tests/chart.rs.

  helm.py lint CHART [VALUES_JSON]
  helm.py render CHART RELEASE NAMESPACE VALUES_JSON
  helm.py validate CRD_YAML MANIFEST...
"""

import json
import sys


def need(module):
    try:
        return __import__(module)
    except ImportError as e:
        sys.exit(
            f"python module {module!r} is missing ({e}): install scripts/test-requirements.txt "
            "into the test Python (FERROTUNE_PYTHON or .venv)"
        )


def lint(chart, values):
    helm_python = need("helm_python")
    result = helm_python.lint(chart, values, strict=True)
    return {"messages": result.get("messages", []), "errors": [str(e) for e in result.get("errors", [])]}


def render(chart, release, namespace, values):
    need("helm_python")
    yaml = need("yaml")
    from helm_python.chart import Chart

    try:
        out = Chart.load(chart).render(values, name=release, namespace=namespace, is_install=True)
    except Exception as e:  # Helm's template or schema error, reported to the test
        return {"error": f"{type(e).__name__}: {e}"}
    objects, notes = [], None
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        for doc in yaml.safe_load_all(text):
            if doc is not None:
                objects.append({"template": path, "object": doc})
    return {"objects": objects, "notes": notes}


def validate(crd_path, manifests):
    yaml = need("yaml")
    jsonschema = need("jsonschema")
    with open(crd_path) as f:
        crd = yaml.safe_load(f)
    version = crd["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    validator = jsonschema.Draft7Validator(schema)
    api_version = f"{crd['spec']['group']}/{version['name']}"
    kind = crd["spec"]["names"]["kind"]
    report = []
    for path in manifests:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
        errors = []
        if len(docs) != 1:
            errors.append(f"holds {len(docs)} documents, expected one TrainingJob")
        for doc in docs:
            if doc.get("apiVersion") != api_version or doc.get("kind") != kind:
                errors.append(f"is {doc.get('apiVersion')}/{doc.get('kind')}, expected {api_version}/{kind}")
            for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
                at = ".".join(str(p) for p in e.absolute_path) or "(root)"
                errors.append(f"{at}: {e.message}")
        report.append({"file": path, "errors": errors})
    return report


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "lint":
        values = json.loads(args[1]) if len(args) > 1 else None
        result = lint(args[0], values)
    elif cmd == "render":
        result = render(args[0], args[1], args[2], json.loads(args[3]))
    elif cmd == "validate":
        result = validate(args[0], args[1:])
    else:
        sys.exit(f"unknown command {cmd!r}")
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
