//! Configuration text through `config::parse_yaml` and `Config::compile`
//! (with a fixed environment holding a few secrets and a database URL).
//!
//! Never a panic; every refusal names a key and says something. An accepted
//! configuration's `check-config` rendering (`cli::render_check_config`)
//! parses and compiles again, to the same rendering.
#![no_main]

use gatehouse::internals::{Config, ConfigError, Env, parse_yaml};
use libfuzzer_sys::fuzz_target;

fn compile(text: &str, env: &Env) -> Result<Config, ConfigError> {
    Config::compile(parse_yaml(text)?, env)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = gatehouse_fuzz::env();
    let config = match compile(text, &env) {
        Ok(config) => config,
        Err(e) => {
            assert!(!e.key.is_empty(), "an error without a key: {e:?}");
            assert!(!e.message.is_empty(), "an error without a message: {e:?}");
            return;
        }
    };
    let rendered = gatehouse::internals::render_check_config(&config);
    let again = match compile(&rendered, &env) {
        Ok(again) => again,
        Err(e) => panic!("the rendering of an accepted config is refused: {e}\n{rendered}"),
    };
    let rerendered = gatehouse::internals::render_check_config(&again);
    assert_eq!(rendered, rerendered, "the rendering changes when read back");
});
