//! Mints benchmark tokens: a JWKS file and files of distinct, Better
//! Auth-shaped JWTs, one per line.
//!
//! ```text
//! cargo run --release --example mint_tokens -- --out DIR --count 10000 \
//!     [--file tokens.txt] [--alg EdDSA|HS256] [--issuer URL] [--audience AUD] \
//!     [--ttl-secs 7200] [--start 0]
//! ```
//!
//! EdDSA: the key lives in `DIR/ed25519.pk8` and is reused when present, so
//! several token files (rotating set, memory set…) verify against the one
//! `DIR/jwks.json`. HS256: the secret lives in `DIR/hs256.secret`. It writes
//! files only; it does not serve the JWKS.

#[path = "support/keys.rs"]
mod keys;

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use keys::{BenchAlg, SigningKey};

/// Parsed command line.
struct Args {
    out: PathBuf,
    /// Tokens to write (users `start..start+count`).
    count: u64,
    /// First user number, so two files never share a token.
    start: u64,
    file: String,
    alg: BenchAlg,
    issuer: String,
    audience: String,
    /// Lifetime of each token; long enough for a whole benchmark run.
    ttl_secs: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        out: PathBuf::from("target/bench/tokens"),
        count: 10_000,
        start: 0,
        file: String::new(),
        alg: BenchAlg::EdDSA,
        issuer: "http://127.0.0.1:3000".into(),
        audience: "http://127.0.0.1:3000".into(),
        ttl_secs: 7200,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--out" => args.out = PathBuf::from(value()?),
            "--count" => args.count = value()?.parse().map_err(|e| format!("--count: {e}"))?,
            "--start" => args.start = value()?.parse().map_err(|e| format!("--start: {e}"))?,
            "--file" => args.file = value()?,
            "--alg" => {
                let v = value()?;
                args.alg = BenchAlg::parse(&v).ok_or_else(|| format!("--alg: unknown {v}"))?;
            }
            "--issuer" => args.issuer = value()?,
            "--audience" => args.audience = value()?,
            "--ttl-secs" => {
                args.ttl_secs = value()?.parse().map_err(|e| format!("--ttl-secs: {e}"))?
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.file.is_empty() {
        args.file = format!("tokens-{}.txt", args.alg.name().to_lowercase());
    }
    Ok(args)
}

fn load_key(args: &Args) -> Result<SigningKey, Box<dyn std::error::Error>> {
    match args.alg {
        BenchAlg::EdDSA => {
            let path = args.out.join("ed25519.pk8");
            if let Ok(bytes) = std::fs::read(&path) {
                return Ok(SigningKey::ed25519_from_pkcs8("bench-ed25519", &bytes)?);
            }
            let (key, pkcs8) = SigningKey::ed25519_generate_pkcs8("bench-ed25519")?;
            std::fs::write(&path, pkcs8)?;
            std::fs::write(args.out.join("jwks.json"), keys::jwks(&[&key]).to_string())?;
            Ok(key)
        }
        BenchAlg::HS256 => {
            let path = args.out.join("hs256.secret");
            if let Ok(secret) = std::fs::read_to_string(&path) {
                return Ok(SigningKey::hmac("bench-hs256", secret.trim().as_bytes()));
            }
            let mut raw = [0u8; 24];
            aws_lc_rs::rand::fill(&mut raw).map_err(|_| keys::KeyError::Generate)?;
            let secret = keys::b64(&raw);
            std::fs::write(&path, &secret)?;
            Ok(SigningKey::hmac("bench-hs256", secret.as_bytes()))
        }
        other => Err(format!(
            "{} tokens are minted only in-process by benches/core.rs",
            other.name()
        )
        .into()),
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(&args.out)?;
    let key = load_key(args)?;
    let now = keys::now();
    let path = args.out.join(&args.file);
    let mut out = BufWriter::new(std::fs::File::create(&path)?);
    for n in args.start..args.start + args.count {
        let claims = keys::better_auth_claims(n, &args.issuer, &args.audience, now, args.ttl_secs);
        out.write_all(key.sign(&claims)?.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    eprintln!(
        "wrote {} {} tokens to {}",
        args.count,
        args.alg.name(),
        path.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mint_tokens: {e}");
            return ExitCode::from(64);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mint_tokens: {e}");
            ExitCode::FAILURE
        }
    }
}
