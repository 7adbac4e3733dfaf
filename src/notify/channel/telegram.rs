//! Telegram Bot API `sendMessage`: plain text (no parse mode, so nothing needs escaping) to one
//! chat; the chat joins at send time and the bot token only in the URL path.

use serde_json::{json, Value};

use super::shorten;

/// Telegram refuses a message longer than this.
const MAX_TEXT: usize = 4096;

/// The message without `chat_id`.
pub fn body(text: &str, footer: &str) -> Value {
    json!({
        "text": shorten(&format!("{text}\n\n{footer}"), MAX_TEXT),
        "disable_web_page_preview": true,
    })
}

/// A numeric chat id is sent as a number, `@channelname` as a string.
pub fn chat_id(chat: &str) -> Value {
    chat.parse::<i64>()
        .map(Value::from)
        .unwrap_or_else(|_| Value::String(chat.to_string()))
}

/// `<base>/bot<TOKEN>/sendMessage`.
pub fn endpoint(base: &str, token: &str) -> String {
    format!("{}/bot{token}/sendMessage", base.trim_end_matches('/'))
}
