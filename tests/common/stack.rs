//! gatehouse on free ports with a config file and a secret, beside an echo
//! upstream, and the proxy configuration `gatehouse proxy-config` prints
//! for the pair: what the end-to-end tests put a real proxy in front of.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::procs::{Gatehouse, gatehouse_bin};
use super::upstream::EchoUpstream;
use super::{Caddy, Envoy, Nginx, Traefik, free_addr};

/// What a gatehouse command printed and its exit code.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A proxy running what `proxy-config` printed for it; stopped when dropped.
pub enum PrintedProxy {
    Nginx(Nginx),
    Caddy(Caddy),
    Traefik(Traefik),
    Envoy(Envoy),
}

/// A ready gatehouse and the echo upstream behind the proxy.
pub struct Stack {
    pub gatehouse: Gatehouse,
    pub app: EchoUpstream,
    pub config: PathBuf,
    /// The environment gatehouse runs with (the provider's secret, a Redis
    /// URL): commands run against this config get it too.
    env: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

impl Stack {
    /// Starts gatehouse on `config_text`, with `secret_env` set to `secret`.
    pub fn start(config_text: &str, secret_env: &str, secret: &str) -> Stack {
        Self::start_with_env(config_text, &[(secret_env, secret)])
    }

    /// Starts gatehouse on `config_text` with the variables `env`.
    pub fn start_with_env(config_text: &str, env: &[(&str, &str)]) -> Stack {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("gatehouse.yaml");
        std::fs::write(&config, config_text).expect("write config");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let gatehouse = Gatehouse::start(Some(&config), &env.iter().cloned().collect());
        assert!(
            gatehouse.wait_ready(Duration::from_secs(20)),
            "gatehouse never became ready:\n{}",
            gatehouse.proc.log_text()
        );
        Stack {
            gatehouse,
            app: EchoUpstream::start(),
            config,
            env,
            _dir: dir,
        }
    }

    /// The config file's path as text.
    pub fn config_path(&self) -> &str {
        self.config.to_str().expect("UTF-8 path")
    }

    /// Runs `gatehouse ARGS` with this stack's secret and a clean
    /// environment otherwise.
    pub fn run(&self, args: &[&str]) -> Outcome {
        let mut cmd = Command::new(gatehouse_bin());
        cmd.args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("BETTER_AUTH_") || k.starts_with("GATEHOUSE_") || k == "REDIS_URL" {
                cmd.env_remove(k);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let out = cmd.output().expect("run gatehouse");
        Outcome {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Starts `target` (`nginx`, `caddy`, `traefik`, `envoy` or
    /// `envoy-http`) on the configuration [`Stack::proxy_config`] prints for
    /// it, on a free address; returns that address and the running proxy.
    pub fn start_printed(&self, target: &str) -> (SocketAddr, PrintedProxy) {
        let listen = free_addr();
        let printed = self.proxy_config(target, listen);
        let proxy = match target {
            "nginx" => PrintedProxy::Nginx(Nginx::start_conf(&printed, listen)),
            "caddy" => PrintedProxy::Caddy(Caddy::start(&printed, listen)),
            "traefik" => PrintedProxy::Traefik(Traefik::start(&printed, listen)),
            _ => PrintedProxy::Envoy(Envoy::start_text(&printed, listen, free_addr())),
        };
        (listen, proxy)
    }

    /// `gatehouse proxy-config TARGET` for this stack, listening on `listen`.
    pub fn proxy_config(&self, target: &str, listen: SocketAddr) -> String {
        let authz = if target == "envoy" {
            self.gatehouse.grpc_addr.to_string()
        } else {
            format!("http://{}", self.gatehouse.http_addr)
        };
        let upstream = format!("http://{}", self.app.addr);
        let out = self.run(&[
            "proxy-config",
            target,
            "--config",
            self.config_path(),
            "--authz-url",
            &authz,
            "--upstream",
            &upstream,
            "--listen",
            &listen.to_string(),
        ]);
        assert_eq!(out.code, 0, "proxy-config {target} failed: {}", out.stderr);
        out.stdout
    }
}
