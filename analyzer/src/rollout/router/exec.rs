//! A router that runs a command: `{weight}` and `{baseline_weight}` in its arguments are
//! replaced by the canary and baseline weights. It cannot read weights back, so every reconcile
//! runs it; the command must be idempotent.

use super::{BoxFuture, RouterError, TrafficRouter};

#[derive(Debug, Clone)]
pub struct ExecRouter {
    command: Vec<String>,
}

impl ExecRouter {
    pub fn new(command: Vec<String>) -> Self {
        ExecRouter { command }
    }

    /// The command line for canary weight `w`.
    pub fn argv(&self, w: u32) -> Vec<String> {
        self.command
            .iter()
            .map(|a| {
                a.replace("{baseline_weight}", &(100 - w.min(100)).to_string())
                    .replace("{weight}", &w.to_string())
            })
            .collect()
    }
}

impl TrafficRouter for ExecRouter {
    fn describe(&self) -> String {
        format!("exec {}", self.command.join(" "))
    }
    fn current_weight(&self) -> BoxFuture<'_, Result<Option<u32>, RouterError>> {
        Box::pin(async { Ok(None) })
    }
    fn set_weight(&self, canary: u32) -> BoxFuture<'_, Result<(), RouterError>> {
        let argv = self.argv(canary);
        let describe = self.describe();
        Box::pin(async move {
            let fail = |message: String| RouterError::Failed {
                router: describe.clone(),
                message,
            };
            let (program, args) = argv
                .split_first()
                .ok_or_else(|| fail("empty command".into()))?;
            let (program, args) = (program.clone(), args.to_vec());
            let out = tokio::task::spawn_blocking(move || {
                std::process::Command::new(program)
                    .args(args)
                    .stdin(std::process::Stdio::null())
                    .output()
            })
            .await
            .map_err(|e| fail(e.to_string()))?
            .map_err(|e| fail(format!("cannot run: {e}")))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(fail(format!(
                    "exited with {}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                )))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_gets_both_weights() {
        let r = ExecRouter::new(vec![
            "set".into(),
            "{weight}".into(),
            "b={baseline_weight}".into(),
        ]);
        assert_eq!(r.argv(20), ["set", "20", "b=80"]);
    }

    #[tokio::test]
    async fn a_failing_command_is_an_error_with_its_stderr() {
        let r = ExecRouter::new(vec![
            "sh".into(),
            "-c".into(),
            "echo nope >&2; exit {weight}".into(),
        ]);
        let e = r.set_weight(3).await.unwrap_err().to_string();
        assert!(e.contains("nope"), "{e}");
        r.set_weight(0).await.unwrap();
    }
}
