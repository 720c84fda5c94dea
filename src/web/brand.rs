//! The operator's brand as pages use it: the name, and the logo, accent stylesheet and
//! extra stylesheet read once at start and served from memory at versioned URLs
//! (`/static/brand/…?v=<hash of the contents>`), so a page never shows a file that
//! changed under it and browsers may keep each one for good.
//!
//! Error pages are rendered where no request is at hand (`ResponseError`), so the
//! brand of the request being handled is also kept in a task-local, set by
//! [`middleware`], like the request id.

use std::path::Path;
use std::sync::{Arc, LazyLock};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes};
use actix_web::{Error, HttpRequest, HttpResponse};

use super::error::AppError;
use super::state::AppState;
use crate::config::Config;
use crate::domain::brand::{self, LogoType, Rgb};

/// An SVG logo is a document that could carry script or pull in other resources:
/// served on its own it may do neither (inline styles are all an SVG drawing needs).
const LOGO_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'";

/// One file served from memory.
#[derive(Debug, Clone)]
pub struct Asset {
    pub body: Bytes,
    pub mime: &'static str,
    /// A hash of the contents, for the URL's `?v=`.
    pub version: u32,
}

impl Asset {
    fn new(body: Vec<u8>, mime: &'static str) -> Self {
        Self {
            version: super::routes::content_version(&body),
            body: Bytes::from(body),
            mime,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Brand {
    pub name: String,
    logo: Option<(LogoType, Asset)>,
    /// Only when the accent differs from the built-in one.
    accent_css: Option<Asset>,
    custom_css: Option<Asset>,
}

static DEFAULT: LazyLock<Arc<Brand>> = LazyLock::new(|| {
    Arc::new(Brand {
        name: brand::DEFAULT_NAME.into(),
        logo: None,
        accent_css: None,
        custom_css: None,
    })
});

tokio::task_local! {
    static CURRENT: Arc<Brand>;
}

/// The brand of the request being handled on this task; the built-in one outside a
/// request.
pub fn current() -> Arc<Brand> {
    CURRENT
        .try_with(Arc::clone)
        .unwrap_or_else(|_| DEFAULT.clone())
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let brand = req
        .app_data::<web::Data<AppState>>()
        .map_or_else(|| DEFAULT.clone(), |s| s.brand.clone());
    CURRENT.scope(brand, next.call(req)).await
}

/// Reads `path`, refusing a file over `max` bytes without reading it all.
fn read_capped(key: &str, path: &str, max: usize) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).map_err(|e| anyhow::anyhow!("{key}: cannot read {path}: {e}"))?;
    let mut body = Vec::new();
    file.take(max as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| anyhow::anyhow!("{key}: cannot read {path}: {e}"))?;
    if body.len() > max {
        anyhow::bail!("{key}: {path} is larger than {} KiB", max / 1024);
    }
    Ok(body)
}

impl Brand {
    /// The brand the configuration asks for, its files read and checked now: a file
    /// that is missing, too large or not what it should be stops the start.
    pub fn load(config: &Config) -> anyhow::Result<Brand> {
        let logo = match config.brand_logo.as_deref() {
            None => None,
            Some(path) => {
                let body = read_capped("brand_logo", path, brand::MAX_LOGO_BYTES)?;
                let name = Path::new(path)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let kind = LogoType::sniff(&name, &body)
                    .map_err(|e| anyhow::anyhow!("brand_logo: {path}: {e}"))?;
                Some((kind, Asset::new(body, kind.mime())))
            }
        };
        // The configuration checked the colour; parsed again to write it normalised.
        let accent = Rgb::parse(&config.brand_accent_color).map_err(anyhow::Error::msg)?;
        let accent_css = (Some(accent) != Rgb::parse(brand::DEFAULT_ACCENT).ok())
            .then(|| Asset::new(accent_stylesheet(accent).into_bytes(), CSS_MIME));
        let custom_css = match config.custom_css.as_deref() {
            None => None,
            Some(path) => {
                let body = read_capped("custom_css", path, brand::MAX_CSS_BYTES)?;
                if std::str::from_utf8(&body).is_err() {
                    anyhow::bail!("custom_css: {path} is not UTF-8 text");
                }
                Some(Asset::new(body, CSS_MIME))
            }
        };
        Ok(Brand {
            name: config.brand_name.clone(),
            logo,
            accent_css,
            custom_css,
        })
    }

    pub fn logo_url(&self) -> Option<String> {
        self.logo
            .as_ref()
            .map(|(kind, a)| format!("/static/brand/logo.{}?v={}", kind.extension(), a.version))
    }

    pub fn accent_css_url(&self) -> Option<String> {
        self.accent_css
            .as_ref()
            .map(|a| format!("/static/brand/accent.css?v={}", a.version))
    }

    pub fn custom_css_url(&self) -> Option<String> {
        self.custom_css
            .as_ref()
            .map(|a| format!("/static/brand/custom.css?v={}", a.version))
    }

    /// The file served at `/static/brand/<name>`, if there is one.
    fn file(&self, name: &str) -> Option<&Asset> {
        match name {
            "accent.css" => self.accent_css.as_ref(),
            "custom.css" => self.custom_css.as_ref(),
            _ => self
                .logo
                .as_ref()
                .filter(|(kind, _)| name == format!("logo.{}", kind.extension()))
                .map(|(_, a)| a),
        }
    }
}

const CSS_MIME: &str = "text/css; charset=utf-8";

/// The accent override. Only for the light scheme: the colour was checked against
/// white, and the dark scheme keeps its own lighter accent, readable on dark grey.
fn accent_stylesheet(accent: Rgb) -> String {
    format!(
        "/* The operator's accent colour (brand_accent_color). */\n\
         @media not all and (prefers-color-scheme: dark) {{\n  \
         :root {{ --accent: {}; --accent-fg: #fff; }}\n}}\n",
        accent.hex()
    )
}

/// `/static/brand/{file}`: the logo and the brand's stylesheets.
pub async fn file(
    state: web::Data<AppState>,
    req: HttpRequest,
    name: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let asset = state.brand.file(&name).ok_or(AppError::NotFound)?;
    let mut res = HttpResponse::Ok();
    res.insert_header((header::CONTENT_TYPE, asset.mime))
        .insert_header((
            header::CACHE_CONTROL,
            super::routes::static_cache_control(&req),
        ));
    if name.starts_with("logo.") {
        // The security-headers middleware keeps a policy the response already has.
        res.insert_header((header::CONTENT_SECURITY_POLICY, LOGO_CSP));
    }
    Ok(res.body(asset.body.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accent_stylesheet_overrides_the_light_scheme_only() {
        let css = accent_stylesheet(Rgb(0x11, 0x22, 0x33));
        assert!(css.contains("--accent: #112233;"));
        assert!(css.contains("not all and (prefers-color-scheme: dark)"));
    }
}
