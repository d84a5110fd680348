"""Model engines behind one contract (`base.Engine`), chosen by name (`registry`)."""
