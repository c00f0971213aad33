// Input checks, shared by every method.
exports.checkTitle = (title) => {
  if (typeof title !== "string" || !title.trim()) throw new TypeError("title must be a non-empty string");
  return title.trim();
};
