//! What the two command lines (`ringproxy` and `ringload`) share.

/// Every option and argument of `cmd` and its subcommands that has no help line, as
/// `PATH ID` (clap's own `help` and `version`, and hidden ones, left out). Both binaries
/// test that this is empty, so `--help` and the man pages describe every option.
pub fn options_without_help(cmd: &clap::Command) -> Vec<String> {
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for a in cmd.get_arguments() {
            let builtin = matches!(a.get_id().as_str(), "help" | "version");
            if !builtin && !a.is_hide_set() && a.get_help().is_none() {
                missing.push(format!("{path} {}", a.get_id()));
            }
        }
        for sub in cmd.get_subcommands() {
            if sub.get_name() != "help" {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
    }
    let mut missing = Vec::new();
    walk(cmd, cmd.get_name(), &mut missing);
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_options_without_help_in_subcommands_too() {
        let cmd = clap::Command::new("x")
            .arg(
                clap::Arg::new("described")
                    .long("described")
                    .help("what it does"),
            )
            .arg(clap::Arg::new("bare").long("bare"))
            .arg(clap::Arg::new("hidden").long("hidden").hide(true))
            .subcommand(clap::Command::new("sub").arg(clap::Arg::new("inner").long("inner")));
        assert_eq!(options_without_help(&cmd), ["x bare", "x sub inner"]);
    }
}
