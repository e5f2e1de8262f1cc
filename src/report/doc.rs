//! A tiny document model rendered both as Markdown and as one self-contained
//! HTML page (images embedded as base64, inline CSS, well-formed markup).

use std::path::{Path, PathBuf};

use base64::Engine;

/// One block of a document.
#[derive(Clone, Debug)]
pub enum Block {
    /// A heading of level 1-3.
    Heading(u8, String),
    /// A paragraph of plain text (`**bold**` spans allowed).
    Para(String),
    /// A table: header cells, then rows.
    Table(Vec<String>, Vec<Vec<String>>),
    /// Images side by side: (path relative to the report folder, caption).
    Images(Vec<(PathBuf, String)>),
    /// Preformatted text.
    Pre(String),
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn inline_html(s: &str) -> String {
    // **bold** -> <strong>
    let mut out = String::new();
    for (i, part) in esc(s).split("**").enumerate() {
        if i % 2 == 1 {
            out.push_str(&format!("<strong>{part}</strong>"));
        } else {
            out.push_str(part);
        }
    }
    out
}

/// Renders Markdown; image paths stay relative to the report folder.
pub fn markdown(blocks: &[Block]) -> String {
    let mut s = String::new();
    for b in blocks {
        match b {
            Block::Heading(l, t) => s.push_str(&format!("{} {t}\n\n", "#".repeat(*l as usize))),
            Block::Para(t) => s.push_str(&format!("{t}\n\n")),
            Block::Table(h, rows) => {
                s.push_str(&crate::util::markdown_table(h, rows));
                s.push('\n');
            }
            Block::Images(imgs) => {
                for (p, cap) in imgs {
                    s.push_str(&format!("![{cap}]({})\n", p.display()));
                }
                s.push('\n');
            }
            Block::Pre(t) => s.push_str(&format!("```\n{t}\n```\n\n")),
        }
    }
    s
}

const CSS: &str = "body{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}\
h1{border-bottom:2px solid #1f77b4;padding-bottom:.2em}h2{margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.15em}\
table{border-collapse:collapse;margin:1em 0;font-size:.92em}th,td{border:1px solid #ccc;padding:.3em .7em;text-align:right}\
th{background:#f0f4f8}td,th{white-space:nowrap}.t{text-align:left}.n{text-align:right}.scroll{overflow-x:auto}tr:nth-child(even) td{background:#fafafa}\
figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top}figure img{max-width:100%;border:1px solid #eee}\
figcaption{font-size:.85em;color:#555}pre{background:#f6f8fa;padding:.8em;overflow-x:auto;font-size:.85em}";

/// Renders one self-contained HTML page; images are read from `base` and embedded.
pub fn html(title: &str, blocks: &[Block], base: &Path) -> String {
    let mut s = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        esc(title)
    );
    for b in blocks {
        match b {
            Block::Heading(l, t) => s.push_str(&format!("<h{l}>{}</h{l}>\n", esc(t))),
            Block::Para(t) => s.push_str(&format!("<p>{}</p>\n", inline_html(t))),
            Block::Table(h, rows) => {
                // Numbers right-aligned, text left-aligned, column by column.
                let numeric: Vec<bool> = (0..h.len())
                    .map(|c| {
                        rows.iter().all(|r| {
                            let v = r.get(c).map_or("", |v| v.trim());
                            v.is_empty()
                                || v == "-"
                                || v.trim_end_matches('%').parse::<f64>().is_ok()
                        })
                    })
                    .collect();
                let class = |c: usize| {
                    if numeric.get(c) == Some(&true) {
                        "n"
                    } else {
                        "t"
                    }
                };
                s.push_str("<div class=\"scroll\"><table>\n<thead><tr>");
                for (i, c) in h.iter().enumerate() {
                    s.push_str(&format!(
                        "<th class=\"{}\">{}</th>",
                        class(i),
                        inline_html(c)
                    ));
                }
                s.push_str("</tr></thead>\n<tbody>\n");
                for r in rows {
                    s.push_str("<tr>");
                    for (i, c) in r.iter().enumerate() {
                        s.push_str(&format!(
                            "<td class=\"{}\">{}</td>",
                            class(i),
                            inline_html(c)
                        ));
                    }
                    s.push_str("</tr>\n");
                }
                s.push_str("</tbody>\n</table></div>\n");
            }
            Block::Images(imgs) => {
                s.push_str("<div>\n");
                for (p, cap) in imgs {
                    match std::fs::read(base.join(p)) {
                        Ok(bytes) => s.push_str(&format!(
                            "<figure><img src=\"data:image/png;base64,{}\" alt=\"{}\"/><figcaption>{}</figcaption></figure>\n",
                            base64::engine::general_purpose::STANDARD.encode(bytes),
                            esc(cap),
                            esc(cap)
                        )),
                        Err(_) => s.push_str(&format!("<p>(missing image {})</p>\n", esc(&p.display().to_string()))),
                    }
                }
                s.push_str("</div>\n");
            }
            Block::Pre(t) => s.push_str(&format!("<pre>{}</pre>\n", esc(t))),
        }
    }
    s.push_str("</body>\n</html>\n");
    s
}
