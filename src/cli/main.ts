console.error("cellgpu: CLI not built yet"); process.exit(2);
