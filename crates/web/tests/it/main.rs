//! The portal driven two ways: through the router in-process (security headers, CSRF,
//! throttling, 404s), and in headless Chromium over chromedriver (the merchant's and the bank
//! operator's journeys, screenshots at 1280 and 375 px).

mod browser;
mod pages;
mod support;
