// A list that renders only the rows in view (fixed row height), so ten thousand rows cost what
// thirty do. With `follow`, it stays scrolled to the end while the reader is at the end.
import { useLayoutEffect, useRef, useState, type ReactNode } from "react";

interface Props<T> {
  items: readonly T[];
  rowHeight: number;
  keyOf: (item: T, index: number) => string | number;
  render: (item: T, index: number) => ReactNode;
  className?: string;
  follow?: boolean;
  label?: string;
}

const OVERSCAN = 8;

export function VirtualList<T>({ items, rowHeight, keyOf, render, className, follow, label }: Props<T>) {
  const box = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [height, setHeight] = useState(400);
  const atEnd = useRef(true);

  useLayoutEffect(() => {
    const element = box.current;
    if (element === null) return;
    const observer = new ResizeObserver(() => setHeight(element.clientHeight));
    observer.observe(element);
    setHeight(element.clientHeight);
    return () => observer.disconnect();
  }, []);

  useLayoutEffect(() => {
    const element = box.current;
    if (follow && element !== null && atEnd.current) {
      element.scrollTop = element.scrollHeight;
      setScrollTop(element.scrollTop);
    }
  }, [follow, items.length]);

  const first = Math.max(0, Math.floor(scrollTop / rowHeight) - OVERSCAN);
  const last = Math.min(items.length, Math.ceil((scrollTop + height) / rowHeight) + OVERSCAN);
  const rows: ReactNode[] = [];
  for (let i = first; i < last; i++) {
    rows.push(
      <div key={keyOf(items[i], i)} className="vrow" style={{ top: i * rowHeight, height: rowHeight }}>
        {render(items[i], i)}
      </div>,
    );
  }
  return (
    <div
      ref={box}
      className={`vlist ${className ?? ""}`}
      aria-label={label}
      onScroll={(e) => {
        const element = e.currentTarget;
        atEnd.current = element.scrollTop + element.clientHeight >= element.scrollHeight - rowHeight;
        setScrollTop(element.scrollTop);
      }}
    >
      <div className="vlist-inner" style={{ height: items.length * rowHeight }}>
        {rows}
      </div>
    </div>
  );
}
