//! The built-in detectors: patterns for real sshd, nginx/apache, postfix and dovecot lines, and
//! the bucket sizes they feed. Owns the pattern text and nothing else; the mapping to CrowdSec hub
//! scenario names is documented on [`crate::detect`].

use std::time::Duration;

use super::spec::DetectorSpec;

/// An address as sshd, nginx, postfix or dovecot print it; the detector parses it afterwards and
/// ignores a capture that is not an address.
const IP: &str = "[0-9a-fA-F:.]+";

/// Every failed SSH authentication or pre-authentication abuse sshd logs with the client address.
/// Written so that it is also a POSIX ERE once `(?P<ip>` becomes `(` (the benchmark compares it
/// with `grep -E`). Greedy `.*` before ` from ` takes the last ` from ADDR port`, so a user name
/// containing "from 10.0.0.1 port 1" cannot move the blame to another address.
pub(super) fn sshd_pattern() -> String {
    format!(
        r"sshd(-session)?\[[0-9]+\]: (Failed [-a-z/]+ for .* from |Invalid user .* from |(Connection closed by|Disconnected from) authenticating user .* |Did not receive identification string from |error: maximum authentication attempts exceeded for .* from |Unable to negotiate with |banner exchange: Connection from )(?P<ip>{IP})( port [0-9]+|$)"
    )
}

/// Literals one of which every line the sshd pattern matches contains.
const SSHD_PREFILTER: [&str; 7] = [
    "Failed ",
    "Invalid user ",
    "authenticating user ",
    "Did not receive identification",
    "maximum authentication attempts",
    "Unable to negotiate",
    "banner exchange",
];

/// Start of an access log line in the combined format (nginx's default, Apache's `combined`),
/// optionally preceded by Apache's `vhost_combined` `host:port `.
fn access_prefix() -> String {
    format!(r#"^([^ ]+:[0-9]+ )?(?P<ip>{IP}) [^ ]+ [^ ]+ \[[^\]]+\] ""#)
}

fn spec(name: &str, scenario: &str, pattern: String, capacity: u32, leak: u64, label: &str) -> DetectorSpec {
    DetectorSpec {
        name: name.into(),
        scenario: scenario.into(),
        pattern,
        capacity,
        leak_speed: Duration::from_secs(leak),
        blackout: Duration::from_secs(60),
        prefilter: Vec::new(),
        ignore: None,
        label: Some(label.into()),
    }
}

/// The built-in set; see the table on [`crate::detect`].
pub(super) fn specs() -> Vec<DetectorSpec> {
    let sshd_prefilter: Vec<String> = SSHD_PREFILTER.iter().map(|s| s.to_string()).collect();
    let access = access_prefix();
    vec![
        DetectorSpec {
            prefilter: sshd_prefilter.clone(),
            ..spec("sshd-auth-failure", "crowdsecurity/ssh-bf", sshd_pattern(), 5, 10, "failed SSH authentications")
        },
        DetectorSpec {
            prefilter: sshd_prefilter,
            ..spec("sshd-auth-failure-slow", "crowdsecurity/ssh-slow-bf", sshd_pattern(), 10, 60, "failed SSH authentications")
        },
        DetectorSpec {
            prefilter: vec![r#"" 400 "#.into(), r#"" 403 "#.into(), r#"" 404 "#.into()],
            // Missing images, styles, scripts and the usual well-known files are what ordinary
            // browsers and crawlers get 404s for; they are not probing.
            ignore: Some(
                r#"(?i)"[A-Z]+ ([^ "?]*\.(css|js|mjs|map|png|jpe?g|gif|ico|svg|webp|avif|bmp|woff2?|ttf|eot|otf|mp4|webm|mp3)(\?[^ "]*)?|/robots\.txt|/sitemap[^ "]*\.xml|/apple-touch-icon[^ "]*|/\.well-known/[^ "]*|/ads\.txt) "#
                    .into(),
            ),
            ..spec(
                "http-probing",
                "crowdsecurity/http-probing",
                format!(r#"{access}[^"]*" (400|403|404) "#),
                10,
                10,
                "HTTP requests answered 400, 403 or 404",
            )
        },
        DetectorSpec {
            prefilter: vec![r#"" 4"#.into()],
            ..spec(
                "http-sensitive-files",
                "crowdsecurity/http-sensitive-files",
                format!(
                    r#"{access}[A-Z]+ [^ "]*(?i:/\.env|/\.git|/\.svn/|/\.hg/|/\.aws/|/\.ssh/|/\.docker|/\.htpasswd|/\.htaccess|/\.ds_store|/\.vscode/|/\.idea/|/wp-config\.php|/wp-login\.php|/xmlrpc\.php|/wp-admin|/phpmyadmin|/pma/|/myadmin|/adminer|/admin|/cgi-bin/|/server-status|/actuator|/vendor/phpunit|/etc/passwd|/\.\./|/web\.config|/config\.json|/backup\.(zip|sql|tar|tgz|gz)|/dump\.sql|/database\.sql|/id_rsa|/shell\.php|/boaform|/hnap1)[^ "]*( [^"]*)?" 4[0-9][0-9] "#
                ),
                4,
                5,
                "probes of sensitive HTTP paths",
            )
        },
        DetectorSpec {
            prefilter: vec!["authentication failed".into()],
            ..spec(
                "postfix-sasl-failure",
                "crowdsecurity/postfix-spam",
                format!(
                    r"postfix(/[-a-zA-Z0-9_]+)*/smtpd\[[0-9]+\]: warning: [^ \[]*\[(?P<ip>{IP})\]: SASL [-A-Z0-9]+ authentication failed"
                ),
                5,
                30,
                "failed SMTP logins",
            )
        },
        DetectorSpec {
            prefilter: vec!["(auth failed".into()],
            ..spec(
                "dovecot-auth-failure",
                "crowdsecurity/dovecot-spam",
                format!(r"dovecot(\[[0-9]+\])?: [a-z0-9]+-login: .*\(auth failed, .*, rip=(?P<ip>{IP})(,|$)"),
                5,
                30,
                "failed IMAP/POP3 logins",
            )
        },
    ]
}
