// Asks for the engine's API token when a request was refused for the lack of it (see token.ts).
import { useEffect, useState } from "react";
import { giveToken, onTokenWanted } from "./token";

export function TokenForm() {
  const [wanted, setWanted] = useState(false);
  const [value, setValue] = useState("");
  useEffect(() => onTokenWanted(setWanted), []);
  if (!wanted) return null;
  return (
    <form
      className="token-form"
      data-testid="token-form"
      onSubmit={(e) => {
        e.preventDefault();
        if (value.trim()) giveToken(value.trim());
        setValue("");
      }}
    >
      <label>
        This engine wants its API token (the one it was started with: <code>--token-file</code> or{" "}
        <code>AWE_TOKEN</code>). The page keeps it for this tab only.
        <input
          type="password"
          autoComplete="off"
          data-testid="token-input"
          value={value}
          onChange={(e) => setValue(e.target.value)}
        />
      </label>
      <button type="submit">Use this token</button>
    </form>
  );
}
