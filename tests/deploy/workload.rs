//! The Deployment, Service, Namespace and add-ons of every variant.

use std::collections::BTreeSet;

use alexa_skill_operator::cli::Cli;
use clap::CommandFactory;
use serde_json::{Value, json};

use crate::{OPERATOR, OPERATOR_NAMESPACE, Rendered, render_all, run_args};

pub(crate) fn check_deployment(r: &Rendered) {
    let d = r.one("Deployment", OPERATOR);
    let what = r.dir;
    assert_eq!(d["metadata"]["namespace"], OPERATOR_NAMESPACE);
    assert_eq!(d["spec"]["replicas"], 2, "{what}: leader + standby");
    let pod = &d["spec"]["template"]["spec"];
    let labels = &d["spec"]["template"]["metadata"]["labels"];
    for (k, v) in d["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("selector")
    {
        assert_eq!(&labels[k], v, "{what}: selector must match the pod labels");
    }
    assert_eq!(pod["serviceAccountName"], OPERATOR);
    assert_eq!(
        pod["automountServiceAccountToken"], true,
        "{what}: the operator needs its token"
    );
    assert_eq!(
        r.one("ServiceAccount", OPERATOR)["automountServiceAccountToken"],
        false
    );
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1, "{what}: one container");
    assert!(pod["initContainers"].is_null() && pod["hostNetwork"].is_null());
    let c = &containers[0];

    // Effective security context: container fields override pod fields.
    let effective = |field: &str| -> Value {
        let own = &c["securityContext"][field];
        if own.is_null() {
            pod["securityContext"][field].clone()
        } else {
            own.clone()
        }
    };
    assert_eq!(effective("runAsNonRoot"), true, "{what}");
    assert_eq!(effective("runAsUser"), 65532, "{what}");
    assert_eq!(
        effective("seccompProfile"),
        json!({"type": "RuntimeDefault"}),
        "{what}"
    );
    assert_eq!(
        c["securityContext"]["allowPrivilegeEscalation"], false,
        "{what}"
    );
    assert_eq!(
        c["securityContext"]["readOnlyRootFilesystem"], true,
        "{what}"
    );
    assert_eq!(
        c["securityContext"]["capabilities"],
        json!({"drop": ["ALL"]}),
        "{what}"
    );
    assert!(effective("privileged").is_null() || effective("privileged") == false);

    // /tmp is the only writable path.
    let mounts = c["volumeMounts"].as_array().expect("volumeMounts");
    assert_eq!(mounts.len(), 1, "{what}: only /tmp is mounted");
    assert_eq!(mounts[0]["mountPath"], "/tmp");
    let volume = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == mounts[0]["name"])
        .expect("tmp volume");
    assert!(
        volume["emptyDir"].is_object(),
        "{what}: /tmp is an emptyDir"
    );

    for (kind, resource) in [
        ("requests", "cpu"),
        ("requests", "memory"),
        ("limits", "cpu"),
        ("limits", "memory"),
    ] {
        assert!(
            c["resources"][kind][resource].is_string(),
            "{what}: resources.{kind}.{resource}"
        );
    }

    // The metrics/health port is named, matches --metrics-addr, and both probes use it.
    let args = run_args(d);
    assert!(
        args.leader_election,
        "{what}: --leader-election with 2 replicas"
    );
    let port: u16 = args
        .metrics_addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("metrics port");
    assert_eq!(
        c["ports"],
        json!([{"name": "http-metrics", "containerPort": port, "protocol": "TCP"}]),
        "{what}"
    );
    assert_eq!(port, 8080);
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(
            c[probe]["httpGet"]["path"], path,
            "{what}: {probe} must call {path}"
        );
        assert_eq!(
            c[probe]["httpGet"]["port"], "http-metrics",
            "{what}: {probe} port"
        );
    }

    // Environment: downward API for the Lease; every other variable is one `run` reads.
    let env = c["env"].as_array().expect("env");
    let from_field = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .map(|e| e["valueFrom"]["fieldRef"]["fieldPath"].clone())
    };
    assert_eq!(
        from_field("POD_NAMESPACE"),
        Some(json!("metadata.namespace"))
    );
    assert_eq!(from_field("POD_NAME"), Some(json!("metadata.name")));
    let known = run_env_vars();
    for e in env {
        let name = e["name"].as_str().expect("env name");
        assert!(
            known.contains(name) || name == "POD_NAME",
            "{what}: env {name} is read by no `run` flag"
        );
    }

    // Image: the crate's version (bump both together), pulled only when missing.
    let image = c["image"].as_str().expect("image");
    assert_eq!(
        image,
        format!("alexa-skill-operator:{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");

    // Graceful shutdown fits inside the termination grace period.
    let grace = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("grace");
    assert!(
        grace > args.shutdown_grace.as_secs(),
        "{what}: terminationGracePeriodSeconds {grace} must exceed --shutdown-grace"
    );
}

/// Environment variables `alexa-skill-operator run` reads, from its clap definition.
fn run_env_vars() -> BTreeSet<String> {
    let cli = Cli::command();
    let run = cli
        .get_subcommands()
        .find(|s| s.get_name() == "run")
        .expect("run subcommand");
    run.get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn deployments_are_hardened_and_configured_through_real_flags() {
    let Some(all) = render_all() else { return };
    for dir in ["deploy", "deploy/namespaced", "deploy/overlays/production"] {
        let r = &all[dir];
        check_deployment(r);
        let ns = r.one("Namespace", OPERATOR_NAMESPACE);
        assert_eq!(
            ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "restricted",
            "{dir}: the operator namespace enforces restricted Pod Security"
        );
        let service = r.one("Service", "alexa-skill-operator-metrics");
        let pod_labels = &r.one("Deployment", OPERATOR)["spec"]["template"]["metadata"]["labels"];
        for (k, v) in service["spec"]["selector"].as_object().expect("selector") {
            assert_eq!(
                &pod_labels[k], v,
                "{dir}: Service selector must match the pods"
            );
        }
        assert_eq!(
            service["spec"]["ports"],
            json!([{"name": "http-metrics", "port": 8080, "targetPort": "http-metrics", "protocol": "TCP"}])
        );
    }
}

#[test]
fn addons_select_the_operator() {
    let Some(all) = render_all() else { return };
    let full = &all["deploy"];
    let service = full.one("Service", "alexa-skill-operator-metrics");
    let pod_labels = &full.one("Deployment", OPERATOR)["spec"]["template"]["metadata"]["labels"];
    let monitor = all["deploy/addons/monitoring"].one("ServiceMonitor", OPERATOR);
    assert_eq!(monitor["metadata"]["namespace"], OPERATOR_NAMESPACE);
    for (k, v) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("matchLabels")
    {
        assert_eq!(
            &service["metadata"]["labels"][k], v,
            "ServiceMonitor must select the Service"
        );
    }
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "http-metrics");
    let policy = all["deploy/addons/network-policy"].one("NetworkPolicy", OPERATOR);
    assert_eq!(policy["metadata"]["namespace"], OPERATOR_NAMESPACE);
    for (k, v) in policy["spec"]["podSelector"]["matchLabels"]
        .as_object()
        .expect("podSelector")
    {
        assert_eq!(
            &pod_labels[k], v,
            "NetworkPolicy must select the operator pods"
        );
    }
    assert_eq!(
        policy["spec"]["ingress"][0]["ports"][0]["port"],
        "http-metrics"
    );
    let egress_ports: BTreeSet<i64> = policy["spec"]["egress"]
        .as_array()
        .expect("egress")
        .iter()
        .flat_map(|rule| rule["ports"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["port"].as_i64())
        .collect();
    assert_eq!(
        egress_ports,
        BTreeSet::from([53, 443, 6443]),
        "DNS, HTTPS, API server"
    );
}
