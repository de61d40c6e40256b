// The console works without this file; it only adds "select all" to the dead letters.
document.addEventListener("DOMContentLoaded", () => {
  const all = document.getElementById("all");
  if (!all) return;
  all.addEventListener("change", () => {
    for (const box of document.querySelectorAll('input[name="pick"]')) box.checked = all.checked;
  });
});
