//! Blocking access to a running server's HTTP API, for end-to-end tests that are synchronous
//! around child processes: one small runtime per [`Http`], JSON in and out, the admin signal
//! listing followed page by page, and Prometheus text read back. It asserts nothing; tests do.

use std::future::Future;

use anyhow::Context;
use palisade_api::native::{MachineView, SignalPage, SignalView};
use serde::de::DeserializeOwned;

/// A reqwest client and the runtime that drives it.
pub struct Http {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
}

/// Status and body of a response.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// Body as text.
    pub body: String,
}

impl Reply {
    /// The body decoded as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> anyhow::Result<T> {
        serde_json::from_str(&self.body)
            .with_context(|| format!("HTTP {} body is not the expected JSON: {}", self.status, self.body))
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A reqwest client for tests: no proxy (loopback only), bounded request time.
pub fn test_client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(std::time::Duration::from_secs(30)).build().expect("a plain HTTP client builds")
}

impl Http {
    /// A client with its own single-threaded runtime.
    pub fn new() -> anyhow::Result<Http> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        Ok(Http { runtime, client: test_client() })
    }

    /// Runs a future to completion on this helper's runtime.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// `GET url`, with a bearer token when given.
    pub fn get(&self, url: &str, bearer: Option<&str>) -> anyhow::Result<Reply> {
        let mut request = self.client.get(url);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        self.send(request)
    }

    /// `POST url` with a JSON body, with a bearer token when given.
    pub fn post(&self, url: &str, bearer: Option<&str>, body: &serde_json::Value) -> anyhow::Result<Reply> {
        let mut request = self.client.post(url).json(body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        self.send(request)
    }

    fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Reply> {
        self.block_on(async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let body = response.text().await?;
            Ok(Reply { status, body })
        })
    }

    /// `GET /v1/admin/machines/{id}`: `None` on 404.
    pub fn admin_machine(&self, base: &str, admin_token: &str, machine_id: &str) -> anyhow::Result<Option<MachineView>> {
        let reply = self.get(&format!("{base}v1/admin/machines/{machine_id}"), Some(admin_token))?;
        match reply.status {
            404 => Ok(None),
            200 => reply.json().map(Some),
            other => anyhow::bail!("GET machine {machine_id}: HTTP {other}: {}", reply.body),
        }
    }

    /// Every stored signal (optionally of one machine), oldest first, following `next_after`.
    pub fn admin_signals(&self, base: &str, admin_token: &str, machine_id: Option<&str>) -> anyhow::Result<Vec<SignalView>> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let mut url = format!("{base}v1/admin/signals?limit=1000&after={after}");
            if let Some(machine_id) = machine_id {
                url.push_str(&format!("&machine_id={machine_id}"));
            }
            let reply = self.get(&url, Some(admin_token))?;
            anyhow::ensure!(reply.status == 200, "GET signals: HTTP {}: {}", reply.status, reply.body);
            let page: SignalPage = reply.json()?;
            all.extend(page.items);
            match page.next_after {
                Some(next) => after = next,
                None => return Ok(all),
            }
        }
    }

    /// The sum of every sample of a Prometheus metric on `GET /metrics` (0 when absent).
    pub fn metric_sum(&self, base: &str, name: &str) -> anyhow::Result<f64> {
        let reply = self.get(&format!("{base}metrics"), None)?;
        anyhow::ensure!(reply.status == 200, "GET /metrics: HTTP {}", reply.status);
        Ok(metric_sum(&reply.body, name))
    }
}

/// The sum of every sample of `name` in Prometheus text (labels ignored; 0 when absent).
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let rest = if rest.starts_with('{') { &rest[rest.find('}')? + 1..] } else { rest };
            // A longer name with the same prefix (`name_bucket`) leaves no space here.
            rest.strip_prefix(' ')?.trim().parse::<f64>().ok()
        })
        // From +0: a float `sum()` of nothing is -0, which prints as `-0`.
        .fold(0.0, |sum, sample| sum + sample)
}

#[cfg(test)]
mod tests {
    use super::metric_sum;

    #[test]
    fn metric_sum_adds_labelled_samples_and_ignores_longer_names() {
        let text = "# TYPE x_total counter\nx_total{a=\"1\"} 2\nx_total{a=\"2\"} 3\nx_total_other 7\nx_total 1\n";
        assert_eq!(metric_sum(text, "x_total"), 6.0);
        assert_eq!(metric_sum(text, "y_total"), 0.0);
        assert_eq!(format!("{:.0}", metric_sum(text, "y_total")), "0", "an absent metric is +0");
    }
}
