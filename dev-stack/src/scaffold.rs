//! `new-gateway <name>`: creates a gateway crate (one composed endpoint, its test, its OpenAPI document) and
//! registers it everywhere a gateway is listed — the workspace, the dev stack, the Dockerfile, the compose
//! file, Prometheus' scrape targets and the compose test — in one step. Each list carries a
//! `new-gateway:` marker line; an entry is inserted above it once (running it again changes nothing).

use std::path::Path;

/// A gateway to create: its crate name (`bff-<short>`) and listening port (admin: port + 1000).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewGateway {
    name: String,
    port: u16,
}

impl NewGateway {
    /// `name` when it is `bff-` followed by lower-case letters, digits and inner dashes, and `port` can
    /// carry an admin port 1000 above it.
    pub(crate) fn new(name: &str, port: u16) -> Result<Self, String> {
        let short = name.strip_prefix("bff-").unwrap_or("");
        let valid = !short.is_empty()
            && short.len() <= 32
            && short.starts_with(|c: char| c.is_ascii_lowercase())
            && !short.ends_with('-')
            && short
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(format!(
                "`{name}`: a gateway name is `bff-` and a lower-case word (letters, digits, dashes), e.g. bff-tv"
            ));
        }
        if !(1024..=64_535).contains(&port) {
            return Err(format!(
                "port {port}: must be 1024..=64535 (admin is port + 1000)"
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            port,
        })
    }

    fn short(&self) -> &str {
        &self.name["bff-".len()..]
    }

    fn crate_name(&self) -> String {
        self.name.replace('-', "_")
    }

    fn admin(&self) -> u16 {
        self.port + 1000
    }

    /// `template` with this gateway's names and ports.
    fn render(&self, template: &str) -> String {
        template
            .replace("{{name}}", &self.name)
            .replace("{{crate}}", &self.crate_name())
            .replace("{{short}}", self.short())
            .replace("{{port}}", &self.port.to_string())
            .replace("{{admin}}", &self.admin().to_string())
    }

    /// The files of the new crate: (path relative to the repository, contents).
    pub(crate) fn crate_files(&self) -> Vec<(String, String)> {
        let files = [
            ("Cargo.toml", include_str!("scaffold/Cargo.toml.tmpl")),
            ("src/lib.rs", include_str!("scaffold/lib.rs.tmpl")),
            ("src/main.rs", include_str!("scaffold/main.rs.tmpl")),
        ];
        files
            .iter()
            .map(|(path, template)| (format!("{}/{path}", self.name), self.render(template)))
            .collect()
    }

    /// The registrations: (file, marker, lines inserted above the marker).
    fn registrations(&self) -> Vec<(&'static str, &'static str, String)> {
        let (name, krate, port, admin) = (&self.name, self.crate_name(), self.port, self.admin());
        vec![
            (
                "Cargo.toml",
                "# new-gateway: members",
                format!("    \"{name}\",\n"),
            ),
            (
                "Cargo.toml",
                "# new-gateway: crates",
                format!("{name} = {{ path = \"{name}\" }}\n"),
            ),
            (
                "dev-stack/Cargo.toml",
                "# new-gateway: crates",
                format!("{name}.workspace = true\n"),
            ),
            (
                "dev-stack/src/main.rs",
                "// new-gateway: gateways",
                format!(
                    "    GatewaySpec {{\n        name: \"{name}\",\n        about: \"{}\",\n        \
                     defaults: {krate}::defaults,\n        app: {krate}::app,\n    }},\n",
                    self.short()
                ),
            ),
            (
                "Dockerfile",
                "# new-gateway: manifests",
                format!("COPY {name}/Cargo.toml {name}/\n"),
            ),
            (
                "docker-compose.yml",
                "# new-gateway: services",
                format!(
                    "  {name}:\n    <<: *gateway\n    command: [\"{name}\"]\n    ports:\n      - \"{port}:{port}\"\n      \
                     - \"127.0.0.1:{admin}:{admin}\"\n    environment:\n      <<: *downstreams\n      \
                     BFF_SERVER__LISTEN: \"0.0.0.0:{port}\"\n      BFF_ADMIN__LISTEN: \"0.0.0.0:{admin}\"\n    \
                     healthcheck:\n      test: [\"CMD\", \"{name}\", \"healthcheck\"]\n      <<: *healthcheck\n\n"
                ),
            ),
            (
                "deploy/prometheus/prometheus.yml",
                "# new-gateway: targets",
                format!(
                    "      - targets: [\"{name}:{admin}\"]\n        labels: {{gateway: {name}}}\n"
                ),
            ),
            (
                "tests/Cargo.toml",
                "# new-gateway: crates",
                format!("{name}.workspace = true\n"),
            ),
            (
                "tests/tests/compose.rs",
                "// new-gateway: gateways",
                format!("        (\"{name}\", {krate}::defaults),\n"),
            ),
        ]
    }

    /// Writes the crate under `root` (refused when the directory exists) and registers it.
    pub(crate) fn create(&self, root: &Path) -> Result<(), String> {
        if root.join(&self.name).exists() {
            return Err(format!(
                "{}: already exists",
                root.join(&self.name).display()
            ));
        }
        self.register(root)?;
        for (path, contents) in self.crate_files() {
            let path = root.join(path);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            std::fs::write(&path, contents).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(())
    }

    /// Inserts every registration above its marker, unless it is there already; every file is read and
    /// checked before any is written.
    pub(crate) fn register(&self, root: &Path) -> Result<(), String> {
        let mut files: Vec<(std::path::PathBuf, String)> = Vec::new();
        for (file, marker, entry) in self.registrations() {
            let path = root.join(file);
            let text = match files.iter_mut().find(|(p, _)| *p == path) {
                Some((_, text)) => text,
                None => {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    files.push((path.clone(), text));
                    &mut files.last_mut().expect("just pushed").1
                }
            };
            *text = insert_above(text, marker, &entry)
                .ok_or_else(|| format!("{}: no `{marker}` line", path.display()))?;
        }
        // The Dockerfile's list of gateway binaries is one line: the name is appended to it.
        if let Some((_, text)) = files.iter_mut().find(|(p, _)| p.ends_with("Dockerfile")) {
            *text = append_word(text, "ARG GATEWAYS=\"", &self.name)
                .ok_or("Dockerfile: no `ARG GATEWAYS=\"` line")?;
        }
        for (path, text) in files {
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(())
    }
}

/// `text` with `entry` inserted above the line containing `marker` (unchanged when `entry` is already
/// there), or `None` without such a line.
fn insert_above(text: &str, marker: &str, entry: &str) -> Option<String> {
    let at = text.find(marker)?;
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    if text.contains(entry) {
        return Some(text.to_owned());
    }
    Some(format!(
        "{}{entry}{}",
        &text[..line_start],
        &text[line_start..]
    ))
}

/// `text` with ` word` added before the closing quote of the line starting with `prefix` (unchanged when
/// the word is listed already), or `None` without such a line.
fn append_word(text: &str, prefix: &str, word: &str) -> Option<String> {
    let start = text.find(prefix)? + prefix.len();
    let end = start + text[start..].find('"')?;
    if text[start..end].split_whitespace().any(|w| w == word) {
        return Some(text.to_owned());
    }
    Some(format!("{} {word}{}", &text[..end], &text[end..]))
}

/// `new-gateway <name> [--port <port>] [--root <dir>]`: the command line of the scaffold. The default port is
/// one above the highest gateway port of `docker-compose.yml`; the default root is this workspace.
pub(crate) fn main(args: &[String]) -> Result<String, String> {
    let usage = "usage: dev-stack new-gateway bff-<name> [--port <port>] [--root <workspace dir>]";
    let mut name = None;
    let mut port = None;
    let mut root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                let value = args.next().ok_or(usage)?;
                port = Some(
                    value
                        .parse::<u16>()
                        .map_err(|_| format!("--port {value}: not a port"))?,
                );
            }
            "--root" => root = args.next().ok_or(usage)?.into(),
            other if name.is_none() && !other.starts_with('-') => name = Some(other.to_owned()),
            _ => return Err(usage.into()),
        }
    }
    let name = name.ok_or(usage)?;
    let port = match port {
        Some(port) => port,
        None => next_port(&root)?,
    };
    let gateway = NewGateway::new(&name, port)?;
    gateway.create(&root)?;
    Ok(format!(
        "created {name}/ (listening on {port}, admin {}) and registered it with the workspace, dev-stack, \
         Dockerfile, docker-compose.yml, Prometheus and the compose test.\nnext: edit {name}/src/lib.rs, \
         then `cargo test -p {name}` and `cargo run -p dev-stack` (see docs/new-gateway.md)",
        gateway.admin()
    ))
}

/// One above the highest published gateway port (8000..=8999) of the compose file.
fn next_port(root: &Path) -> Result<u16, String> {
    let path = root.join("docker-compose.yml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let highest = text
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse::<u16>().ok())
        .filter(|p| (8000..9000).contains(p))
        .max()
        .unwrap_or(8080);
    Ok(highest + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// The example gateway: what `new-gateway bff-tv --port 8085` creates.
    fn example() -> NewGateway {
        NewGateway::new("bff-tv", 8085).unwrap()
    }

    /// Golden: the scaffold's crate is exactly the checked-in `bff-tv` (which the workspace builds and the
    /// tests run), and the checked-in registrations are exactly the scaffold's (registering again changes
    /// no file).
    #[test]
    fn scaffold_output_is_the_checked_in_example() {
        for (path, contents) in example().crate_files() {
            let checked_in = std::fs::read_to_string(repo().join(&path)).unwrap();
            assert!(
                checked_in == contents,
                "{path} differs from the scaffold's output:\n{contents}"
            );
        }
        let dir = std::env::temp_dir().join(format!("bff-scaffold-golden-{}", std::process::id()));
        copy_registered_files(&repo(), &dir);
        example().register(&dir).unwrap();
        for (file, _, _) in example().registrations() {
            let before = std::fs::read_to_string(repo().join(file)).unwrap();
            let after = std::fs::read_to_string(dir.join(file)).unwrap();
            assert!(
                before == after,
                "{file}: the example's registration is not the scaffold's"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn copy_registered_files(from: &Path, to: &Path) {
        for (file, _, _) in example().registrations() {
            let target = to.join(file);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(from.join(file), &target).unwrap();
        }
    }

    /// A new gateway is created and registered once in every list; a second run refuses and changes
    /// nothing; a bad name or port is refused before anything is written.
    #[test]
    fn creates_and_registers_once() {
        let dir = std::env::temp_dir().join(format!("bff-scaffold-new-{}", std::process::id()));
        copy_registered_files(&repo(), &dir);
        let out = main(&[
            "bff-kiosk".into(),
            "--root".into(),
            dir.display().to_string(),
        ])
        .unwrap();
        assert!(out.contains("listening on 8086"), "{out}");
        let lib = std::fs::read_to_string(dir.join("bff-kiosk/src/lib.rs")).unwrap();
        assert!(lib.contains("defaults(\"bff-kiosk\", 8086)"));
        for (file, marker, entry) in NewGateway::new("bff-kiosk", 8086).unwrap().registrations() {
            let text = std::fs::read_to_string(dir.join(file)).unwrap();
            assert_eq!(text.matches(entry.as_str()).count(), 1, "{file}");
            assert!(text.find(entry.as_str()) < text.find(marker), "{file}");
        }
        let dockerfile = std::fs::read_to_string(dir.join("Dockerfile")).unwrap();
        assert!(dockerfile.contains(" bff-tv bff-kiosk\""), "{dockerfile}");
        let snapshot = std::fs::read_to_string(dir.join("docker-compose.yml")).unwrap();
        assert!(
            main(&[
                "bff-kiosk".into(),
                "--root".into(),
                dir.display().to_string()
            ])
            .is_err()
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("docker-compose.yml")).unwrap(),
            snapshot
        );
        for bad in ["kiosk", "bff-", "bff-Kiosk", "bff-k/../x", "bff-k-"] {
            assert!(NewGateway::new(bad, 8090).is_err(), "{bad}");
        }
        assert!(NewGateway::new("bff-k", 80).is_err());
        assert!(!dir.join("bff-k").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
