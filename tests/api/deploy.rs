//! The deployable manifests (deploy/): both overlays render with `kubectl kustomize`, and what
//! must hold in them does: non-root, probes, resources, graceful termination covering the drain
//! and grace, an autoscaler and a disruption budget per Deployment, the services wired to each
//! other, and every setting of `ecom --help` production needs set to a value ecom itself accepts.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use clap::{CommandFactory, Parser};
use ecom::config::{Cli, ServiceName};
use serde_norway::Value;

/// Settings left unset on purpose (deploy/base/config.yaml says why); everything else of
/// `ecom --help` must be in the ConfigMap, the Secret or the container's own env.
const UNSET_ON_PURPOSE: &[&str] = &[
    "CDN_URL",
    "TRUSTED_PROXIES",
    "REDIS_PASSWORD",
    "ADMIN_EMAIL",
    "ADMIN_PASSWORD",
    "CATALOG_URL",
    "ORDERS_URL",
    "PAYMENTS_URL",
];

/// The resources `kubectl kustomize deploy/overlays/<overlay>` renders.
fn render(overlay: &str) -> Vec<Value> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/overlays/");
    let out = Command::new("kubectl")
        .args(["kustomize", &format!("{dir}{overlay}")])
        .output()
        .expect("kubectl runs (the machine has it; see README, Deploying)");
    assert!(
        out.status.success(),
        "kubectl kustomize {overlay}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.split("\n---\n")
        .map(|doc| serde_norway::from_str(doc).unwrap())
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap()
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_owned(),
                v.as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The ConfigMap's and the Secret's settings, together.
fn settings(docs: &[Value]) -> BTreeMap<String, String> {
    let mut all = string_map(&of_kind(docs, "ConfigMap")[0]["data"]);
    all.extend(string_map(&of_kind(docs, "Secret")[0]["stringData"]));
    all
}

/// The env var behind each `--long` setting of `ecom`.
fn setting_flags() -> BTreeMap<String, String> {
    Cli::command()
        .get_arguments()
        .filter_map(|a| {
            let env = a.get_env()?.to_str()?.to_owned();
            Some((env, a.get_long()?.to_owned()))
        })
        .collect()
}

/// Parses `args` of a container with `settings` as ecom itself would (flags instead of the
/// environment, so the test does not touch its process's env), and validates them as `ecom`
/// does at start-up.
fn parse_as_ecom(args: &[String], settings: &BTreeMap<String, String>) -> Cli {
    let flags = setting_flags();
    let mut argv = vec!["ecom".to_owned()];
    argv.extend(args.iter().cloned());
    for (env, value) in settings {
        let flag = flags
            .get(env)
            .unwrap_or_else(|| panic!("{env} is not a setting of ecom --help"));
        argv.push(format!("--{flag}={value}"));
    }
    let mut cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    cli.settings
        .validate()
        .unwrap_or_else(|e| panic!("production validation refuses {args:?}: {e}"));
    cli
}

fn seconds(d: std::time::Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// What every Deployment and the migration Job must have; returns each Deployment's container
/// args and env.
fn check_workloads(docs: &[Value]) -> BTreeMap<String, (Vec<String>, BTreeMap<String, String>)> {
    let all = settings(docs);
    let mut wired = BTreeMap::new();
    for deployment in of_kind(docs, "Deployment") {
        let name = name(deployment);
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        assert_ne!(pod["securityContext"]["runAsUser"], 0, "{name}");
        let containers = pod["containers"].as_sequence().unwrap();
        assert_eq!(containers.len(), 1, "{name}: the one ecom binary");
        let c = &containers[0];
        for probe in ["readinessProbe", "livenessProbe"] {
            assert!(c[probe].is_mapping(), "{name}: {probe}");
        }
        for kind in ["requests", "limits"] {
            for resource in ["cpu", "memory"] {
                assert!(
                    !c["resources"][kind][resource].is_null(),
                    "{name}: {kind}.{resource}"
                );
            }
        }
        assert_eq!(
            c["securityContext"]["allowPrivilegeEscalation"], false,
            "{name}"
        );
        assert_eq!(
            c["securityContext"]["readOnlyRootFilesystem"], true,
            "{name}"
        );
        let env_from: Vec<&str> = c["envFrom"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(|e| {
                e["configMapRef"]["name"]
                    .as_str()
                    .or(e["secretRef"]["name"].as_str())
            })
            .collect();
        assert_eq!(env_from, ["ecom-config", "ecom-secrets"], "{name}");
        let args: Vec<String> = c["args"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_owned())
            .collect();
        let own_env: BTreeMap<String, String> = c["env"]
            .as_sequence()
            .map(|env| {
                env.iter()
                    .map(|e| {
                        let k = e["name"].as_str().unwrap().to_owned();
                        (k, e["value"].as_str().unwrap().to_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut env = all.clone();
        env.extend(own_env.clone());
        let cli = parse_as_ecom(&args, &env);
        // The process exits by itself (drain + grace) before the kubelet's SIGKILL.
        let budget = seconds(cli.settings.shutdown_drain) + seconds(cli.settings.shutdown_grace);
        let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
        assert!(
            grace > budget,
            "{name}: {grace} s <= drain + grace {budget} s"
        );

        for kind in ["HorizontalPodAutoscaler", "PodDisruptionBudget"] {
            let found = of_kind(docs, kind).into_iter().any(|d| {
                let target = if kind == "HorizontalPodAutoscaler" {
                    d["spec"]["scaleTargetRef"]["name"].as_str()
                } else {
                    d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"].as_str()
                };
                target == Some(name)
            });
            assert!(found, "{name}: no {kind}");
        }
        wired.insert(name.to_owned(), (args, own_env));
    }

    let jobs = of_kind(docs, "Job");
    assert_eq!(jobs.len(), 1, "one migration Job");
    let job = &jobs[0]["spec"]["template"]["spec"];
    assert_eq!(job["securityContext"]["runAsNonRoot"], true);
    assert_eq!(job["containers"][0]["args"][0], "migrate");

    // Every setting production needs is set, and nothing unknown is.
    let flags = setting_flags();
    for env in flags.keys() {
        let set = all.contains_key(env) || wired.values().any(|(_, own)| own.contains_key(env));
        assert!(
            set || UNSET_ON_PURPOSE.contains(&env.as_str()),
            "{env} is set nowhere in deploy/ (add it to deploy/base/config.yaml or secret.yaml)"
        );
    }
    assert_eq!(all["APP_ENV"], "production");
    wired
}

#[test]
fn the_mesh_overlay_runs_every_service_apart_behind_one_balancing_edge() {
    let docs = render("mesh");
    let wired = check_workloads(&docs);
    let names: BTreeSet<&str> = wired.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from(["auth", "catalog", "edge", "orders", "payments", "users"])
    );
    let services: BTreeMap<&str, &Value> = of_kind(&docs, "Service")
        .into_iter()
        .map(|s| (name(s), s))
        .collect();
    let deployments: BTreeMap<&str, &Value> = of_kind(&docs, "Deployment")
        .into_iter()
        .map(|d| (name(d), d))
        .collect();
    for service in ServiceName::ALL {
        let svc = format!("{service:?}").to_lowercase();
        let (args, _) = &wired[&svc];
        assert_eq!(args, &["serve", "--services", svc.as_str()]);
        // Headless, so the edge's DNS re-resolution sees every pod (services/balancer.rs).
        assert_eq!(services[svc.as_str()]["spec"]["clusterIP"], "None", "{svc}");
        assert_eq!(services[svc.as_str()]["spec"]["ports"][0]["port"], 50051);
        // Ready means this pod's own service answers SERVING (NOT_SERVING from a SIGTERM on).
        let probe = &deployments[svc.as_str()]["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
            ["grpc"];
        assert_eq!(probe["service"], service.grpc_name(), "{svc}");
        let upstream = format!("--upstream={svc}=http://{svc}:50051");
        assert!(
            wired["edge"].0.contains(&upstream),
            "edge misses {upstream}"
        );
    }
    assert_eq!(wired["edge"].0[0], "edge");
    assert_eq!(wired["orders"].1["CATALOG_URL"], "http://catalog:50051");
    assert_eq!(wired["orders"].1["PAYMENTS_URL"], "http://payments:50051");
    assert_eq!(wired["payments"].1["ORDERS_URL"], "http://orders:50051");
    let edge = &deployments["edge"]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(edge["readinessProbe"]["httpGet"]["path"], "/ready");
}

#[test]
fn the_single_overlay_runs_everything_in_one_process() {
    let docs = render("single");
    let wired = check_workloads(&docs);
    assert_eq!(wired.len(), 1);
    assert_eq!(wired["ecom"].0, ["serve"]);
    assert!(
        wired["ecom"].1.is_empty(),
        "no service URLs: all in-process"
    );
}

#[test]
fn the_image_is_multi_stage_non_root_and_runs_the_one_binary() {
    let dockerfile = include_str!("../../deploy/Dockerfile");
    let stages = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .count();
    assert!(stages >= 2, "multi-stage");
    let user = dockerfile
        .lines()
        .rfind(|l| l.starts_with("USER "))
        .expect("a USER line");
    assert!(!user.contains(" 0") && !user.contains("root"), "{user}");
    assert!(dockerfile.contains(r#"ENTRYPOINT ["/usr/local/bin/ecom"]"#));
}
