//! A small W3C WebDriver client over one keep-alive HTTP connection pool (tauri-driver fails
//! with clients that close the connection per request), with waits that poll a condition
//! until a deadline instead of sleeping.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

/// The W3C element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One WebDriver session: one app process and its window.
pub struct Session {
    http: reqwest::Client,
    base: String,
    pub name: &'static str,
}

/// An element of the page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Session {
    /// Starts `application` with `args` through the tauri-driver at `driver`.
    pub async fn start(
        driver: &str,
        name: &'static str,
        application: &Path,
        args: &[&str],
    ) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(4)
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| e.to_string())?;
        let caps = json!({
            "capabilities": { "alwaysMatch": { "tauri:options": {
                "application": application,
                "args": args,
            }}}
        });
        let res: Value = http
            .post(format!("{driver}/session"))
            .json(&caps)
            .send()
            .await
            .map_err(|e| format!("{name}: new session: {e}"))?
            .json()
            .await
            .map_err(|e| format!("{name}: new session: {e}"))?;
        let id = res["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| format!("{name}: new session refused: {res}"))?
            .to_owned();
        Ok(Self {
            http,
            base: format!("{driver}/session/{id}"),
            name,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res: Value = req
            .send()
            .await
            .map_err(|e| format!("{}: {path}: {e}", self.name))?
            .json()
            .await
            .map_err(|e| format!("{}: {path}: {e}", self.name))?;
        if let Some(err) = res["value"]["error"].as_str() {
            return Err(format!(
                "{}: {path}: {err}: {}",
                self.name,
                res["value"]["message"].as_str().unwrap_or("")
            ));
        }
        Ok(res["value"].clone())
    }

    /// Ends the session (the driver stops the app).
    pub async fn end(&self) {
        let _ = self.http.delete(&self.base).send().await;
    }

    /// Runs `script` in the page and returns its value.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value, String> {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// Runs `script`, which calls its last argument with the result.
    pub async fn execute_async(&self, script: &str, args: Vec<Value>) -> Result<Value, String> {
        self.call(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// The first element matching `css`, if any now.
    pub async fn find(&self, css: &str) -> Result<Option<Element>, String> {
        let v = match self
            .call(
                reqwest::Method::POST,
                "/elements",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await
        {
            Ok(v) => v,
            // The page changed under the search (React re-rendered): as if not there yet.
            Err(e) if e.contains("stale element") => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(v.as_array()
            .and_then(|a| a.first())
            .and_then(|e| e[ELEMENT].as_str())
            .map(|id| Element(id.to_owned())))
    }

    /// Waits until `css` matches an element.
    pub async fn wait_for(&self, css: &str, within: Duration) -> Result<Element, String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(e) = self.find(css).await? {
                return Ok(e);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("{}: no {css} within {within:?}", self.name));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until nothing matches `css` (a dialog closed).
    pub async fn wait_gone(&self, css: &str, within: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + within;
        while let Some(e) = self.find(css).await? {
            if tokio::time::Instant::now() > deadline {
                let text = self.text(&e).await.unwrap_or_default();
                return Err(format!(
                    "{}: {css} still there after {within:?}: {text:?}",
                    self.name
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Waits until the text of `css` contains `text`.
    pub async fn wait_for_text(
        &self,
        css: &str,
        text: &str,
        within: Duration,
    ) -> Result<String, String> {
        let deadline = tokio::time::Instant::now() + within;
        let mut last = String::new();
        loop {
            if let Some(e) = self.find(css).await? {
                last = self.text(&e).await.unwrap_or_default();
                if last.contains(text) {
                    return Ok(last);
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "{}: {css} did not show {text:?} within {within:?} (it showed {last:?})",
                    self.name
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks the button whose text is `label` (inside `scope`, a CSS selector).
    pub async fn click_button(
        &self,
        scope: &str,
        label: &str,
        within: Duration,
    ) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + within;
        let script = "const [scope, label] = arguments;
            const b = [...document.querySelectorAll(scope + ' button')]
                .find(b => b.textContent.trim() === label && !b.disabled);
            if (!b) return false;
            b.scrollIntoView({block: 'center'});
            return true;";
        loop {
            if self
                .execute(script, vec![json!(scope), json!(label)])
                .await?
                == json!(true)
            {
                let e = self
                    .find_button(scope, label)
                    .await?
                    .ok_or_else(|| format!("{}: button {label:?} went away", self.name))?;
                return self.click(&e).await;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "{}: no enabled button {label:?} in {scope} within {within:?}",
                    self.name
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks the tab whose text is `label`.
    pub async fn click_tab(&self, label: &str, within: Duration) -> Result<(), String> {
        self.click_matching("[role=tab]", label, within).await
    }

    /// Clicks the first element matching `css`, once there is one.
    pub async fn click_first(&self, css: &str, within: Duration) -> Result<(), String> {
        let e = self.wait_for(css, within).await?;
        self.click(&e).await
    }

    /// Clicks the button labelled `label` inside the first `item` (e.g. a list item) whose
    /// text contains `containing`.
    pub async fn click_in(
        &self,
        item: &str,
        containing: &str,
        label: &str,
        within: Duration,
    ) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let v = self
                .execute(
                    "const [item, containing, label] = arguments;
                     const it = [...document.querySelectorAll(item)].find(e => e.textContent.includes(containing));
                     return it ? ([...it.querySelectorAll('button')].find(b => b.textContent.trim() === label) ?? null) : null;",
                    vec![json!(item), json!(containing), json!(label)],
                )
                .await?;
            if let Some(id) = v[ELEMENT].as_str() {
                return self.click(&Element(id.to_owned())).await;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "{}: no {label:?} in a {item} with {containing:?} within {within:?}",
                    self.name
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn click_matching(
        &self,
        css: &str,
        label: &str,
        within: Duration,
    ) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let v = self
                .execute(
                    "const [css, label] = arguments;
                     return [...document.querySelectorAll(css)].find(e => e.textContent.trim() === label) ?? null;",
                    vec![json!(css), json!(label)],
                )
                .await?;
            if let Some(id) = v[ELEMENT].as_str() {
                return self.click(&Element(id.to_owned())).await;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "{}: no {css} {label:?} within {within:?}",
                    self.name
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn find_button(&self, scope: &str, label: &str) -> Result<Option<Element>, String> {
        let v = self
            .execute(
                "const [scope, label] = arguments;
                 return [...document.querySelectorAll(scope + ' button')]
                    .find(b => b.textContent.trim() === label && !b.disabled) ?? null;",
                vec![json!(scope), json!(label)],
            )
            .await?;
        Ok(v[ELEMENT].as_str().map(|id| Element(id.to_owned())))
    }

    /// Clicks an element.
    pub async fn click(&self, e: &Element) -> Result<(), String> {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{}/click", e.0),
            Some(json!({})),
        )
        .await
        .map(|_| ())
    }

    /// Types into an element (WebDriver key codes, e.g. `\u{E004}` Tab, `\u{E007}` Enter).
    pub async fn type_into(&self, e: &Element, text: &str) -> Result<(), String> {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{}/value", e.0),
            Some(json!({ "text": text })),
        )
        .await
        .map(|_| ())
    }

    /// Replaces an input's text the way a person does (select all, type), so the page's
    /// own input handlers see it (WebDriver's "clear" bypasses them), and checks it took.
    pub async fn replace_text(&self, e: &Element, text: &str) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            // Control down, A, Control up, then the new text.
            self.type_into(e, &format!("\u{E009}a\u{E009}{text}"))
                .await?;
            let now = self
                .execute("return arguments[0].value;", vec![json!({ ELEMENT: e.0 })])
                .await?;
            if now.as_str() == Some(text) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "{}: the field shows {now} instead of {text:?}",
                    self.name
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// An element's visible text.
    pub async fn text(&self, e: &Element) -> Result<String, String> {
        Ok(self
            .call(
                reqwest::Method::GET,
                &format!("/element/{}/text", e.0),
                None,
            )
            .await?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// Saves a PNG of the window.
    pub async fn screenshot(&self, path: &Path) -> Result<(), String> {
        use base64::Engine as _;
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .map_err(|e| e.to_string())?;
        std::fs::write(path, png).map_err(|e| format!("{}: {e}", path.display()))
    }
}
