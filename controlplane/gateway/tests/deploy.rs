//! The deployment manifests: the ClusterRole grants what the controller reads and writes, and
//! the Deployment's arguments are ones the binary accepts.

use serde_json::Value;
use sluice_gateway::static_source::parse_documents;

fn manifests() -> Vec<Value> {
    let path = format!("{}/deploy/sluice-gateway.yaml", env!("CARGO_MANIFEST_DIR"));
    parse_documents(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn granted(role: &Value, group: &str, resource: &str, verb: &str) -> bool {
    role["rules"].as_array().unwrap().iter().any(|rule| {
        let has = |field: &str, value: &str| {
            rule[field]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v == value || v == "*")
        };
        has("apiGroups", group) && has("resources", resource) && has("verbs", verb)
    })
}

#[test]
fn cluster_role_covers_the_watches_and_writes() {
    let docs = manifests();
    let role = docs.iter().find(|d| d["kind"] == "ClusterRole").unwrap();
    let g = "gateway.networking.k8s.io";
    for (group, resource) in [
        (g, "gatewayclasses"),
        (g, "gateways"),
        (g, "tcproutes"),
        (g, "udproutes"),
        (g, "httproutes"),
        (g, "referencegrants"),
        ("", "services"),
        ("discovery.k8s.io", "endpointslices"),
        ("", "secrets"),
        ("", "namespaces"),
    ] {
        for verb in ["list", "watch"] {
            assert!(
                granted(role, group, resource, verb),
                "{verb} {group}/{resource}"
            );
        }
    }
    for resource in [
        "gatewayclasses",
        "gateways",
        "tcproutes",
        "udproutes",
        "httproutes",
    ] {
        assert!(
            granted(role, g, &format!("{resource}/status"), "patch"),
            "{resource}/status"
        );
        // Specs are never written.
        assert!(
            !granted(role, g, resource, "patch"),
            "{resource} must not be patchable"
        );
    }
    assert!(
        granted(role, "", "services", "delete"),
        "created Services are removed"
    );
    assert!(
        granted(role, "", "services", "patch"),
        "loxilb serviceBehaviour: create"
    );
    assert!(!granted(role, "", "secrets", "patch"));
    let binding = docs
        .iter()
        .find(|d| d["kind"] == "ClusterRoleBinding")
        .unwrap();
    assert_eq!(binding["subjects"][0]["name"], "sluice-gateway");
}

#[test]
fn deployment_arguments_are_accepted() {
    let docs = manifests();
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        deployment["spec"]["template"]["spec"]["serviceAccountName"],
        "sluice-gateway"
    );
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.sock");
    // The Deployment's flags (its appliance address swapped for a socket that does not
    // exist), in static mode over an empty directory: the flags parse, the pass runs and
    // fails only on reaching sluiced (exit 1, not the usage error 2).
    let mut args: Vec<String> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .filter(|a| !a.starts_with("--sluiced="))
        .collect();
    args.extend([
        format!("--sluiced=unix://{}", missing.display()),
        format!("--manifests={}", dir.path().display()),
        "--once".into(),
    ]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice-gateway"))
        .args(&args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("sluiced unix://{}", missing.display())),
        "{stderr}"
    );
}
