// A search result's snippet is taken from the page's main text. The theme puts a print-only
// copy of the page title and its table of contents ("3. Masking Contents ...") first in it,
// and every chapter has a "Run this chapter yourself" box: both are left out, so the
// snippet shows the prose where the word occurs.
document.addEventListener("DOMContentLoaded", () => {
  if (typeof Search === "undefined" || !Search.htmlToText) return;
  const htmlToText = Search.htmlToText;
  Search.htmlToText = (htmlString, anchor) => {
    const doc = new DOMParser().parseFromString(htmlString, "text/html");
    doc.querySelectorAll(".onlyprint, #jb-print-docs-body, .run-yourself")
      .forEach((el) => el.remove());
    return htmlToText(doc.documentElement.outerHTML, anchor);
  };
});
