//! Running `nft`: apply a compiled table atomically, list it, read its counters, remove it.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::compile::Ruleset;
use crate::counters::{self, Counter, CounterError};
use crate::model::Name;

/// How to invoke `nft` (plainly, or inside a network namespace).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nft {
    argv: Vec<String>,
}

/// An `nft` invocation that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// The program could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The command.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// nft refused the script; being one transaction, nothing of it was applied.
    #[error("nft refused the ruleset, the running ruleset is unchanged: {stderr}")]
    Rejected {
        /// nft's explanation.
        stderr: String,
    },
    /// A listing failed (e.g. the table does not exist).
    #[error("nft {what} failed: {stderr}")]
    Failed {
        /// What was asked.
        what: String,
        /// nft's explanation.
        stderr: String,
    },
    /// The JSON listing could not be read.
    #[error(transparent)]
    Counters(#[from] CounterError),
}

/// How [`Nft::update`] brought the table up to date.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Only what changed was replaced; the rest kept its counters.
    InPlace,
    /// The whole table was replaced; every counter starts from zero.
    Replaced,
}

impl Default for Nft {
    fn default() -> Self {
        Nft::new()
    }
}

impl Nft {
    /// `nft` in the current network namespace.
    pub fn new() -> Nft {
        Nft {
            argv: vec!["nft".to_string()],
        }
    }

    /// `nft` inside the named network namespace (`ip netns exec <name> nft`).
    pub fn in_netns(name: &str) -> Nft {
        Nft {
            argv: ["ip", "netns", "exec", name, "nft"]
                .map(String::from)
                .to_vec(),
        }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<Result<String, String>, NftError> {
        let (program, rest) = self.argv.split_first().ok_or_else(|| NftError::Spawn {
            program: String::new(),
            source: std::io::Error::other("empty command"),
        })?;
        let spawn_err = |source| NftError::Spawn {
            program: program.clone(),
            source,
        };
        let mut child = Command::new(program)
            .args(rest)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_err)?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes()).map_err(spawn_err)?;
        }
        let out = child.wait_with_output().map_err(spawn_err)?;
        Ok(if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        })
    }

    /// Replaces our table with `ruleset` in one transaction; other tables are untouched.
    /// Conntrack state is kept, so established connections survive.
    pub fn apply(&self, ruleset: &Ruleset) -> Result<(), NftError> {
        self.run(&["-f", "-"], Some(ruleset.script()))?
            .map(drop)
            .map_err(|stderr| NftError::Rejected { stderr })
    }

    /// Turns the running table into `ruleset` in one transaction. With the ruleset applied
    /// last (`from`), only what changed is touched ([`Ruleset::update_script`]), so the
    /// counters of unchanged rules keep counting and a one-rule change costs one element;
    /// without one, or when that fails (the table was changed behind our back, or `ruleset`
    /// is refused), the whole table is replaced as by [`Nft::apply`], whose error is returned.
    pub fn update(&self, from: Option<&Ruleset>, ruleset: &Ruleset) -> Result<Applied, NftError> {
        if let Some(script) = from.and_then(|f| ruleset.update_script(f)) {
            if self.run(&["-f", "-"], Some(&script))?.is_ok() {
                return Ok(Applied::InPlace);
            }
        }
        self.apply(ruleset).map(|()| Applied::Replaced)
    }

    /// Asks the kernel whether `ruleset` would apply, without applying it (`nft -c`).
    pub fn check(&self, ruleset: &Ruleset) -> Result<(), NftError> {
        self.run(&["-c", "-f", "-"], Some(ruleset.script()))?
            .map(drop)
            .map_err(|stderr| NftError::Rejected { stderr })
    }

    /// The running table as nft prints it (for `routectl policy show`).
    pub fn show(&self, table: &Name) -> Result<String, NftError> {
        self.run(&["list", "table", "inet", table.as_str()], None)?
            .map_err(|stderr| NftError::Failed {
                what: format!("list table inet {table}"),
                stderr,
            })
    }

    /// Counters of the running table, per policy rule, endpoint default deny and fixed rule.
    pub fn counters(&self, table: &Name) -> Result<Vec<Counter>, NftError> {
        let json = self
            .run(&["-j", "list", "table", "inet", table.as_str()], None)?
            .map_err(|stderr| NftError::Failed {
                what: format!("-j list table inet {table}"),
                stderr,
            })?;
        Ok(counters::parse(&json)?)
    }

    /// Removes our table (no error if it is not there).
    pub fn remove(&self, table: &Name) -> Result<(), NftError> {
        let script = format!("table inet {table}\ndelete table inet {table}\n");
        self.run(&["-f", "-"], Some(&script))?
            .map(drop)
            .map_err(|stderr| NftError::Failed {
                what: format!("delete table inet {table}"),
                stderr,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::{Inputs, compile};
    use crate::model::PolicyFile;

    #[test]
    fn a_script_nft_refuses_leaves_the_running_table() {
        let ns = testkit::netns::Netns::new("rej").unwrap();
        let nft = Nft::in_netns(ns.name());
        let file = PolicyFile::parse(
            "[[policy]]\nname = \"p\"\nselector = 'all()'\n[[host_endpoint]]\nname = \"lo\"\ninterface = \"lo\"\n",
            "p.toml",
        )
        .unwrap();
        let good = compile(&Inputs {
            file: &file,
            workloads: &[],
            remote: &[],
            pools: &[],
        })
        .unwrap();
        nft.apply(&good).unwrap();
        let before = nft.show(good.table()).unwrap();
        // Valid up to the last line, so a partial apply would show; the jump target is missing.
        let broken = good
            .script()
            .replace("jump pol-p-ingress", "jump pol-missing");
        let broken = Ruleset::from_script(good.table().clone(), broken);
        let err = nft.apply(&broken).unwrap_err();
        assert!(matches!(err, NftError::Rejected { .. }), "{err}");
        assert!(err.to_string().contains("unchanged"), "{err}");
        assert_eq!(nft.show(good.table()).unwrap(), before);
    }
}
